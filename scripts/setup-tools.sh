#!/usr/bin/env bash
# Finish the Triton and perf_analyzer installs that pip alone cannot do. Idempotent.
#   1. the python-backend stub for this Python goes next to the python backend;
#   2. Debian libraries: libpython for the stub when the interpreter has no shared
#      libpython of its own, and with --perf libb64 for perf_analyzer.
set -euo pipefail
PY=${1:?usage: setup-tools.sh VENV_PYTHON [--perf]}
PERF=${2:-}

read -r TRITON PYVER LIBDIR < <("$PY" - <<'PYEOF'
import importlib.util, pathlib, sys, sysconfig
spec = importlib.util.find_spec("pytriton")
home = pathlib.Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
print(home, f"{sys.version_info.major}.{sys.version_info.minor}", sysconfig.get_config_var("LIBDIR") or "-")
PYEOF
)

stub="$TRITON/python_backend_stubs/$PYVER/triton_python_backend_stub"
[ -x "$stub" ] || { echo "no Triton python-backend stub for Python $PYVER in nvidia-pytriton" >&2; exit 1; }
install -m 755 "$stub" "$TRITON/backends/python/triton_python_backend_stub"

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian package(s): $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    echo "warning: please install the Debian package(s) $* (needs root)" >&2
  fi
}

if [ "$PERF" = --perf ]; then
  ldconfig -p | grep -q 'libb64\.so\.0d' || apt_install libb64-0d
  echo "perf_analyzer libraries ready"
  exit 0
fi
if ! ls "$LIBDIR"/libpython"$PYVER".so* >/dev/null 2>&1 && ! ldconfig -p | grep -q "libpython$PYVER\.so\.1"; then
  apt_install "libpython$PYVER"
fi
echo "Triton server and python backend ready in $TRITON"
