#!/usr/bin/env bash
# The C API as a host links and compiles it: libditstream exports the functions the header declares
# and nothing else (pipelines/libditstream.map: no engine C++, no standard-library template
# instances or unique symbols, which keep dlclose from unloading it), and the header is clean
# C89, C99, C11 and C++98 under -pedantic-errors.
set -euo pipefail
lib=${1:?usage: capi_hygiene.sh path/to/libditstream.so path/to/ditstream.h}
header=${2:?usage: capi_hygiene.sh path/to/libditstream.so path/to/ditstream.h}
others=$(nm -D --defined-only "$lib" | awk '$3 !~ /^ds_/ {print $2 " " $3}')
if [ -n "$others" ]; then
  echo "FAIL: $lib exports symbols beyond ds_*:" >&2
  echo "$others" | head -20 >&2
  exit 1
fi
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^ds_/ {print $3}' | sort)
declared=$(grep -o '^DS_API [^(]*(' "$header" | sed 's/($//; s/.*[ *]//' | sort)
if [ "$exported" != "$declared" ]; then
  echo "FAIL: exported and declared functions differ:" >&2
  diff <(echo "$exported") <(echo "$declared") >&2 || true
  exit 1
fi
for std in c89 c99 c11; do
  cc -std=$std -pedantic-errors -Wall -Wextra -Werror -fsyntax-only -x c "$header"
done
c++ -std=c++98 -pedantic-errors -Wall -Wextra -Werror -fsyntax-only -x c++ "$header"
echo "ok: $(echo "$exported" | wc -l) functions exported, nothing else; the header is clean C89/C99/C11/C++98"
