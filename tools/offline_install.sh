# Sourced by run.sh and tools/gpu_check.sh (bash): make ffn-edge importable in a given interpreter
# WITHOUT network, e.g. the Python of a lent GPU machine (its own torch build, no venv, no index).
#
#   offline_install PY [WHEELS_DIR]
#
# 1. WHEELS_DIR (optional): every *.whl in it, pip install --no-index --no-deps (libraries the machine
#    lacks, e.g. safetensors, tqdm, pytest; fetched elsewhere with pip download, see README).
# 2. pip install --no-deps --no-build-isolation --no-index -e . with the machine's own setuptools
#    (ffn_edge.runtime / ffn_edge.export exist only through pyproject's package-dir mapping).
# 3. If that fails, it says so and falls back to a tree of symlinks on PYTHONPATH (PYTHONSAFEPATH=1
#    keeps the checkout's own ffn_edge/ from shadowing it); console scripts are then absent
#    (python -m ffn_edge.train etc. still work).
# Returns non-zero, with one line on stderr, only if ffn-edge still cannot be imported.

_ffn_importable() {
    "$1" -c 'import ffn_edge.runtime, ffn_edge.export, ffn_edge.gpucheck' >/dev/null 2>&1
}

offline_install() {
    local py=$1 wheels=${2:-} log
    if ! command -v "$py" >/dev/null; then echo "offline_install: error: no interpreter $py" >&2; return 1; fi
    log=$(mktemp)
    if [ -n "$wheels" ]; then
        if ! compgen -G "$wheels/*.whl" >/dev/null; then
            echo "offline_install: error: no *.whl in $wheels" >&2; return 1
        fi
        if ! "$py" -m pip install -q --no-index --no-deps "$wheels"/*.whl >"$log" 2>&1; then
            echo "offline_install: error: installing the wheels in $wheels failed: $(grep -v '^\s*$' "$log" | tail -1)" >&2
            return 1
        fi
    fi
    if _ffn_importable "$py"; then return 0; fi
    if "$py" -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$log" 2>&1 && _ffn_importable "$py"
    then
        echo "offline_install: installed ffn-edge (editable, offline, --no-deps) into $py" >&2
        return 0
    fi
    echo "offline_install: pip install --no-deps --no-build-isolation -e . FAILED in $py:" \
         "$(grep -v '^\s*$' "$log" | tail -1)" >&2
    local tree
    tree=$(mktemp -d)/site
    mkdir -p "$tree/ffn_edge"
    for f in "$PWD"/ffn_edge/*; do ln -s "$f" "$tree/ffn_edge/"; done
    ln -s "$PWD/runtime" "$tree/ffn_edge/runtime"
    ln -s "$PWD/export" "$tree/ffn_edge/export"
    export PYTHONPATH="$tree${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1
    if _ffn_importable "$py"; then
        echo "offline_install: running from a symlinked tree on PYTHONPATH instead ($tree)" >&2
        return 0
    fi
    echo "offline_install: error: ffn-edge cannot be imported in $py:" \
         "$("$py" -c 'import ffn_edge.runtime, ffn_edge.export, ffn_edge.gpucheck' 2>&1 | tail -1)" >&2
    return 1
}
