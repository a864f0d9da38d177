#!/usr/bin/env bash
# llbook's set-up and entry points. See README.md.
#   ./dev.sh lab     install what is missing, then start JupyterLab on notebooks/
#   ./dev.sh build   install what is missing, then `llbook build` the example
#   ./dev.sh test    install what is missing, then run the whole test suite
#   ./dev.sh docs    execute the notebooks and render them as HTML in docs/_build
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=${LLBOOK_VENV:-$ROOT/.venv}

# Debian packages the engine and the tests drive for real.
APT_PACKAGES=(busybox-static graphviz runc proot docker-registry skopeo umoci docker.io debootstrap golang-github-docker-docker-dev slirp4netns openssh-client git)
# Only the tests need these: a real browser (driven by Playwright) for the widget tests, sshd for git over ssh.
TEST_APT_PACKAGES=(chromium openssh-server)

install_system_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: missing system packages (${missing[*]}); run as root or install them with apt" >&2
        return 0
    fi
    echo "dev.sh: apt-get install ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
    local extras=$1
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
}

cmd=${1:-}
shift || true
case "$cmd" in
    lab)
        install_system_packages
        install_python_packages notebook
        exec "$VENV/bin/jupyter" lab --notebook-dir="$ROOT/notebooks" "$@"
        ;;
    build)
        install_system_packages
        install_python_packages notebook
        exec "$VENV/bin/llbook" build -f "$ROOT/examples/hello/Dockerfile" "$@" "$ROOT/examples/hello"
        ;;
    docs)
        install_system_packages
        install_python_packages notebook
        mkdir -p "$ROOT/docs/_build"
        work=$(mktemp -d)
        cp "$ROOT"/notebooks/*.ipynb "$work"/
        (cd "$work" && "$VENV/bin/jupyter" nbconvert --to html --execute \
            --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.store_widget_state=True \
            --output-dir "$ROOT/docs/_build" ./*.ipynb)
        rm -rf "$work"
        echo "dev.sh: rendered notebooks in docs/_build/" >&2
        ;;
    test)
        install_system_packages "${TEST_APT_PACKAGES[@]}"
        install_python_packages "notebook,test"
        set +e
        "$VENV/bin/python" -m pytest "$@"
        rc=$?
        set -e
        # pytest exits 5 when it collected no tests: that is a failure too.
        if [ $rc -eq 5 ]; then echo "dev.sh: no tests were collected" >&2; exit 1; fi
        exit $rc
        ;;
    *)
        echo "usage: ./dev.sh lab|build|test|docs [args...]" >&2
        exit 2
        ;;
esac
