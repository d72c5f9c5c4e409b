"""Deciding the frame count: device signals (battery, power, thermal, load), the latency model, the
budgets, the scheduler and the policy that combines them. Imports core only.
"""
