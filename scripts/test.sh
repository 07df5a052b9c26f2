#!/usr/bin/env bash
# Set up everything the test suite needs and run it: a virtualenv with the package and
# its test extras, and (as root, through apt) the OpenSSH server the log-watching tests
# start on loopback, and Chromium for the web UI tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the web UI tests drive Debian's browser through playwright (no browser download)
debian_packages=(openssh-server openssh-client chromium)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages ${missing[*]}: install them (e.g. sudo apt-get install ${missing[*]}) and rerun" >&2
        exit 2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# screenshots and other artefacts of the browser tests land here
export NOVASTRESS_TEST_ARTIFACTS="${NOVASTRESS_TEST_ARTIFACTS:-$PWD/test-artifacts}"
mkdir -p "$NOVASTRESS_TEST_ARTIFACTS"
exec .venv/bin/python -m pytest "$@"
