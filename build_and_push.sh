#!/usr/bin/env bash
# Build the image and push it to Amazon ECR, where SageMaker pulls it from.
# Run with --help for the options.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
  cat <<'EOF'
Usage: build_and_push.sh [options] IMAGE_NAME [TAG]

Builds the image from this repository's Dockerfile, creates the ECR repository
IMAGE_NAME if it does not exist, logs Docker in to the registry, pushes
IMAGE_NAME:TAG (TAG defaults to "latest") and prints the image URI as the last
line, ready for image_uri= in the SageMaker SDK.

With --sklearn-version the image holds that scikit-learn line (the one that
pickled your models) and its tag says so: TAG-sklearn1.2, or sklearn1.2
without a TAG.

The account and region come from the AWS CLI's own configuration (the
credentials in use, then AWS_REGION, AWS_DEFAULT_REGION or `aws configure get
region`) unless given here.

Options:
  --account ID          AWS account that owns the repository
  --region REGION       AWS region of the repository (e.g. eu-west-1)
  --platform PLATFORM   linux/amd64 (default) or linux/arm64 for Graviton
                        instance types (ml.c7g, ml.m7g, ...)
  --sklearn-version LINE
                        the scikit-learn line: 1.2, 1.4 or 1.9 (the default);
                        the Dockerfile's build argument SKLEARN_VERSION
  --build-arg KEY=VAL   passed to docker build; repeatable
                        (e.g. --build-arg BASE_IMAGE=python:3.11-slim-bookworm)
  --dry-run             print every command instead of running it
  -h, --help            show this help
EOF
}

die() {
  echo "build_and_push.sh: $*" >&2
  exit 2
}

account=""
region=""
platform="linux/amd64"
sklearn_line=""
dry_run=0
build_args=()
positional=()

while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --account) (($# >= 2)) || die "--account needs a value"; account=$2; shift 2 ;;
    --account=*) account=${1#*=}; shift ;;
    --region) (($# >= 2)) || die "--region needs a value"; region=$2; shift 2 ;;
    --region=*) region=${1#*=}; shift ;;
    --platform) (($# >= 2)) || die "--platform needs a value"; platform=$2; shift 2 ;;
    --platform=*) platform=${1#*=}; shift ;;
    --sklearn-version) (($# >= 2)) || die "--sklearn-version needs a value"; sklearn_line=$2; shift 2 ;;
    --sklearn-version=*) sklearn_line=${1#*=}; shift ;;
    --build-arg) (($# >= 2)) || die "--build-arg needs KEY=VALUE"; build_args+=(--build-arg "$2"); shift 2 ;;
    --build-arg=*) build_args+=(--build-arg "${1#*=}"); shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; positional+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) positional+=("$1"); shift ;;
  esac
done

((${#positional[@]} >= 1 && ${#positional[@]} <= 2)) || { usage >&2; exit 2; }
name=${positional[0]}
tag=${positional[1]:-latest}

# The lines: each lock under requirements/, and the Dockerfile's default.
default_line=$(sed -n 's/^ARG SKLEARN_VERSION=//p' "$ROOT/Dockerfile")
if [[ -n $sklearn_line ]]; then
  if [[ $sklearn_line != "$default_line" && ! -f $ROOT/requirements/sklearn-$sklearn_line.txt ]]; then
    lines=""
    for lock in "$ROOT"/requirements/sklearn-*.txt; do
      lock=${lock##*/sklearn-}
      lines+="${lock%.txt}, "
    done
    die "--sklearn-version $sklearn_line: the image can be built for the scikit-learn lines ${lines}and $default_line (the default)"
  fi
  build_args+=(--build-arg "SKLEARN_VERSION=$sklearn_line")
  # The tag names the line, so an image for a model's line is told apart at a glance.
  if ((${#positional[@]} == 2)); then
    tag="$tag-sklearn$sklearn_line"
  else
    tag="sklearn$sklearn_line"
  fi
fi

# ECR's rules for repository names and image tags.
[[ $name =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] ||
  die "image name '$name' is not a valid ECR repository name (lower case letters, digits, . _ - and /)"
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] ||
  die "tag '$tag' is not a valid image tag"
case "$platform" in
  linux/amd64|linux/arm64) ;;
  *) die "platform '$platform' is not one SageMaker runs (linux/amd64 or linux/arm64)" ;;
esac
[[ -z $account || $account =~ ^[0-9]{12}$ ]] || die "account '$account' is not a 12-digit AWS account ID"

# One command as it would be typed: words quoted only where the shell needs it.
# Under --dry-run, <account> and <region> stand for what the CLI would answer.
show() {
  local out="" word bare
  for word in "$@"; do
    bare=${word//<account>/}
    bare=${bare//<region>/}
    if [[ $bare =~ ^[A-Za-z0-9_./:=@%+,-]*$ && -n $word ]]; then
      out+=" $word"
    else
      out+=" $(printf '%q' "$word")"
    fi
  done
  printf '%s\n' "${out# }"
}

# Runs a command, or only prints it under --dry-run.  Tool output goes to
# stderr so that stdout ends with the image URI.
run() {
  if ((dry_run)); then
    show "$@"
  else
    "$@" >&2
  fi
}

if [[ -z $account ]]; then
  if ((dry_run)); then
    show aws sts get-caller-identity --query Account --output text
    account="<account>"
  else
    account=$(aws sts get-caller-identity --query Account --output text)
  fi
fi
if [[ -z $region ]]; then
  # The CLI's own order: the environment first, then the profile's setting.
  region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
fi
if [[ -z $region ]]; then
  if ((dry_run)); then
    show aws configure get region
    region="<region>"
  else
    region=$(aws configure get region || true)
    [[ -n $region ]] || die "no AWS region configured: pass --region or run 'aws configure set region REGION'"
  fi
fi

# Registry host names; the China regions live under amazonaws.com.cn.
domain=amazonaws.com
[[ $region == cn-* ]] && domain=amazonaws.com.cn
registry="$account.dkr.ecr.$region.$domain"
uri="$registry/$name:$tag"

# The repository must exist before a push; a failing describe means it does not.
describe=(aws ecr describe-repositories --repository-names "$name" --region "$region")
create=(aws ecr create-repository --repository-name "$name" --region "$region"
        --image-scanning-configuration scanOnPush=true)
if ((dry_run)); then
  echo "$(show "${describe[@]}") || $(show "${create[@]}")"
elif ! "${describe[@]}" >/dev/null 2>&1; then
  echo "creating the ECR repository $name in $region" >&2
  "${create[@]}" >&2
fi

login=(aws ecr get-login-password --region "$region")
docker_login=(docker login --username AWS --password-stdin "$registry")
if ((dry_run)); then
  echo "$(show "${login[@]}") | $(show "${docker_login[@]}")"
else
  "${login[@]}" | "${docker_login[@]}" >&2
fi

# SageMaker instances are x86_64 unless a Graviton type is chosen, so the
# platform is explicit even when building on an ARM laptop.
run docker build --platform "$platform" --tag "$name:$tag" ${build_args[@]+"${build_args[@]}"} \
  --file "$ROOT/Dockerfile" "$ROOT"
run docker tag "$name:$tag" "$uri"
run docker push "$uri"

echo "$uri"
