#!/usr/bin/env bash
# Builds MONAI Label 0.8.5's own environment beside this checkout (default .venv-monailabel/).
# Idempotent: a stamp holding the hash of this script and setup.cfg skips a rebuild.
#
# Why its own environment: monailabel 0.8.5 serves bundles only with monai 1.5.2 (with 1.6.x, Spacingd
# on NIfTI fails inside its inference). Why --no-deps: its declared dependencies pull sam2 and a CUDA
# torchvision; the list below is what the server imports. Why only torchvision/utils.py: monailabel
# imports torchvision.utils at start-up, and PyPI's torchvision wheels are CUDA builds that do not load
# beside CPU torch; utils.py on its own needs only torch, numpy and PIL.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
VENV=${1:-.venv-monailabel}
STAMP="$VENV/.installed"
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0   # the release made with torch 2.13
WANT=$(cat "$0" setup.cfg | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    echo "MONAI Label environment up to date: $VENV"
    exit 0
fi
rm -f "$STAMP"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip -q --disable-pip-version-check"
$PIP install --upgrade pip
# CPU torch first: any other torch request can pull a multi-GB CUDA build.
$PIP install "torch==$TORCH_VERSION"
$PIP install --no-deps "monailabel==0.8.5"
$PIP install "torch==$TORCH_VERSION" "monai==1.5.2" "numpy<2" \
    fastapi uvicorn pydantic pydantic-settings python-multipart \
    "pydicom==2.4.4" "pydicom-seg==0.4.1" "dicomweb-client==0.60.1" google-auth \
    "itk-core==5.4.7" "itk-io==5.4.7" pynrrd girder-client scikit-image shapely watchdog timeloop \
    schedule passlib pyjwt cachetools expiring-dict psutil nibabel pytorch-ignite tensorboard einops \
    pillow -e .

SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
$PIP download --no-deps --dest "$WHEELS" "torchvision==$TORCHVISION_VERSION"
mkdir -p "$SITE/torchvision"
: > "$SITE/torchvision/__init__.py"
"$VENV/bin/python" - "$WHEELS"/torchvision-*.whl "$SITE/torchvision/utils.py" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    open(sys.argv[2], "wb").write(wheel.read("torchvision/utils.py"))
PY
"$VENV/bin/python" -c "import torchvision.utils, monailabel.interfaces.app, monai, monai_genesis.networks; assert monai.__version__ == '1.5.2', monai.__version__"
echo "$WANT" > "$STAMP"
echo "MONAI Label environment built: $VENV"
