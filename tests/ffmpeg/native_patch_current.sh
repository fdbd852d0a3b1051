#!/usr/bin/env bash
# native_patch_current.sh SHIPPED BUILT: the shipped FFmpeg patch equals the one make_patch.sh builds
# from plugin/ffmpeg/vsrc_ditstream.c and the option table now. So the AVOptions inside it agree with
# ds_option_at (they are generated from it), and the patch is never stale.
set -euo pipefail
if ! diff -u "$1" "$2"; then
  echo "FAIL: $1 is stale; refresh it with: cp $2 $1" >&2
  exit 1
fi
echo "native_patch_current: ok"
