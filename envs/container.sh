#!/usr/bin/env bash
# Build the alseg image with podman and run the workflow inside it (docs/containers.md).
#
#   envs/container.sh build [--local-base] [--tag NAME]
#   envs/container.sh run [--tag NAME] [--workdir DIR] [--user UID:GID] [--gpus] [--network MODE] [-- COMMAND...]
#
# build  builds envs/Containerfile in two steps: the dependencies (torch, about 5 GB) as an image
#        tagged by a hash of pyproject.toml's dependency lists, the base and the Containerfile, saved
#        as an OCI archive in the cache so that a fresh machine loads it instead of installing again;
#        then the package and the workflow on top (seconds).
#        --local-base makes the base image here: `debootstrap --variant=minbase bookworm` from the
#        Debian mirror this machine's apt already uses, then `podman import` (no image registry).
#        Without it the base is the public Python image (BASE=... overrides either).
# run    runs COMMAND (default: the README's main command) in the image with DIR (default: the
#        current folder) mounted as /work, its working folder: results and .snakemake land there,
#        owned by UID:GID (default: the invoking user), with no network (--network host for
#        `alseg annotate`'s page). --gpus passes every NVIDIA GPU (CDI).
#
# Environment: ALSEG_CI_CACHE (cache folder, default ~/.cache/alseg-ci), PODMAN (default podman),
# BASE (base image). Needs rootful podman or rootless podman with subuids.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ALSEG_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alseg-ci}"
podman_cmd=("${PODMAN:-podman}")
tag=localhost/alseg:latest
local_base_tag=localhost/alseg-base:bookworm-minbase

die() { echo "envs/container.sh: $*" >&2; exit 1; }
say() { echo "envs/container.sh: $*" >&2; }

# crun, podman's default runtime, fails on hosts with hybrid cgroups; runc works there and elsewhere.
command -v runc >/dev/null && podman_cmd+=(--runtime runc)

# Containers inherit no usable default for these on every host: nofile at most the hard limit.
ulimits() {
    local hard
    hard="$(ulimit -Hn)"
    [[ "$hard" == unlimited ]] && hard=1048576
    local nofile=$(( hard < 65536 ? hard : 65536 ))
    echo "--ulimit=nofile=$nofile:$nofile --ulimit=nproc=32768:32768"
}

dependency_hash() {  # what the dependencies image depends on
    local base="$1"
    python3 - "$repo" "$base" <<'PY'
import hashlib, json, re, sys
from pathlib import Path
repo, base = Path(sys.argv[1]), sys.argv[2]
pyproject = (repo / "pyproject.toml").read_text()
try:
    import tomllib
    project = tomllib.loads(pyproject)
    deps = [project["build-system"]["requires"], project["project"]["dependencies"]]
except ModuleNotFoundError:  # Python < 3.11: the whole file
    deps = pyproject
stage = re.split(r"^FROM \$\{DEPENDENCIES\}", (repo / "envs/Containerfile").read_text(), flags=re.M)[0]
blob = json.dumps({"deps": deps, "base": base, "stage": stage}, sort_keys=True)
print(hashlib.sha256(blob.encode()).hexdigest()[:16])
PY
}

debian_mirror() {
    local mirror
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    [[ -z "$mirror" ]] && mirror="$(awk '$1 == "deb" && $0 ~ /debian/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
    [[ -n "$mirror" ]] || die "no Debian mirror in /etc/apt/sources.list*; give one as DEBIAN_MIRROR"
    echo "$mirror"
}

make_local_base() {
    if "${podman_cmd[@]}" image exists "$local_base_tag"; then return; fi
    command -v debootstrap >/dev/null || die "--local-base needs debootstrap (apt-get install debootstrap)"
    local rootfs
    rootfs="$(mktemp -d)"
    say "debootstrapping a minimal Debian bookworm into $rootfs (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "${DEBIAN_MIRROR:-$(debian_mirror)}" >"$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; rm -rf "$rootfs"; die "debootstrap failed (log: $rootfs.log)"; }
    tar -C "$rootfs" -c . | "${podman_cmd[@]}" import - "$local_base_tag" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
}

build_args() {  # the host's CA bundle for pip, mounted read-only, never copied into a layer
    local ca=/etc/ssl/certs/ca-certificates.crt
    if [[ -f "$ca" ]]; then
        echo "--volume=$ca:/run/host-ca.crt:ro --build-arg=PIP_CERT=/run/host-ca.crt"
    fi
}

build() {
    local base="${BASE:-python:3.11-slim}"
    while (( $# )); do
        case "$1" in
            --local-base) make_local_base; base="${BASE:-$local_base_tag}";;
            --tag) tag="$2"; shift;;
            *) die "build: unknown option $1";;
        esac
        shift
    done
    local key deps archive
    key="$(dependency_hash "$base")"
    deps="localhost/alseg-dependencies:$key"
    archive="$cache/image-dependencies-$key.oci.tar"
    mkdir -p "$cache/pip"
    # $(ulimits) and $(build_args) are unquoted on purpose: each is a list of options.
    if ! "${podman_cmd[@]}" image exists "$deps"; then
        if [[ -f "$archive" ]]; then
            say "loading the dependencies image from $archive"
            local loaded
            loaded="$("${podman_cmd[@]}" load --quiet --input "$archive" | awk '{print $NF}' | tail -1)"
            "${podman_cmd[@]}" image exists "$deps" || "${podman_cmd[@]}" tag "$loaded" "$deps"
        else
            say "installing the dependencies into $deps (torch: about 5 GB, minutes)"
            "${podman_cmd[@]}" build --network=host $(ulimits) $(build_args) \
                --volume="$cache/pip:/root/.cache/pip" --build-arg="BASE=$base" \
                --target=dependencies --tag="$deps" --file="$repo/envs/Containerfile" "$repo"
            say "saving $deps to $archive"
            "${podman_cmd[@]}" save --format=oci-archive --output="$archive.part" "$deps"
            mv "$archive.part" "$archive"
        fi
    fi
    say "building $tag on $deps"
    "${podman_cmd[@]}" build --network=host $(ulimits) --build-arg="BASE=$base" --build-arg="DEPENDENCIES=$deps" \
        --tag="$tag" --file="$repo/envs/Containerfile" "$repo"
}

run() {
    local workdir="$PWD" user gpus=() network=none
    user="$(id -u):$(id -g)"
    while (( $# )); do
        case "$1" in
            --tag) tag="$2"; shift;;
            --workdir) workdir="$2"; shift;;
            --user) user="$2"; shift;;
            --gpus) gpus=(--device=nvidia.com/gpu=all);;
            --network) network="$2"; shift;;
            --) shift; break;;
            *) break;;
        esac
        shift
    done
    local command=("$@")
    (( ${#command[@]} )) || command=(snakemake --cores all --config round=10)
    # Snakemake in the image runs the image's workflow in /work unless told otherwise.
    if [[ "${command[0]}" == snakemake && " ${command[*]} " != *" --snakefile "* && " ${command[*]} " != *" -s "* ]]; then
        command=(snakemake --snakefile /opt/alseg/Snakefile "${command[@]:1}")
    fi
    mkdir -p "$workdir"
    local userns=()
    # Rootless podman maps the invoking user to root in the container; keep-id keeps their uid.
    [[ "$(id -u)" -ne 0 ]] && userns=(--userns=keep-id)
    # No network by default: the workflow downloads nothing (a run that tried would fail, not pass unnoticed).
    exec "${podman_cmd[@]}" run --rm --init --network="$network" $(ulimits) "${userns[@]}" --user="$user" "${gpus[@]}" \
        --volume="$(cd "$workdir" && pwd):/work" --workdir=/work "$tag" "${command[@]}"
}

case "${1:-}" in
    build) shift; build "$@";;
    run) shift; run "$@";;
    *) die "usage: envs/container.sh build [--local-base] [--tag NAME] | run [--tag NAME] [--workdir DIR] [--user UID:GID] [--gpus] [--network MODE] [-- COMMAND...]";;
esac
