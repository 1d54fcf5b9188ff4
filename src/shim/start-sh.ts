// The shim's launchers are POSIX sh scripts: before any Node start-up, they answer the one `start`
// on a pod start's critical path that spawns nothing, a CRI app container's whose pod's server
// listens already (StartContainer runs it; ~85 ms CPU as the Node front entry, ~5 ms here: a
// `grep` and a `sha256sum`). Everything else, and any input this short path is not sure of,
// goes to Node unchanged (`exec`), which answers or reports it as before (front.ts). The repo's
// launcher (bin/shim/containerd-shim-kata-ts-v2) carries this text verbatim, kept in step by
// test/unit/shim-start-sh.test.ts; the node installer writes its launcher from it.
//
// What it must agree on with start-light.ts (the Node path): the flags containerd 1.6 passes
// (`-namespace NS -address A -publish-binary B -id ID [-debug] start`, one dash, separate values),
// the group (config.json's `io.kubernetes.cri.container-type` is `container`, its
// `io.kubernetes.cri.sandbox-id` the pod's), the socket `/run/containerd/s/<sha256(A/NS/sandbox)>`
// (address.ts; an address or namespace that path.join would clean, e.g. with `//`, `.` or `..`
// segments, goes to Node), and the answer: `unix://<socket>` on stdout and in `<bundle>/address`.
// config.json is Go's compact JSON (containerd writes it with json.Marshal): a key followed by
// `":"` cannot occur inside a JSON string (its quotes are escaped), and any second occurrence of
// either key elsewhere in the spec (another map's key) makes it go to Node. "Listens" is checked
// as "the socket file exists": a pod's server that died leaves its socket until containerd's
// `delete` for it removes it, and containerd then fails this container's task with the
// connection refused (the Node path would have failed it too, naming the missing pod).

/** Defines `kata_ts_app_start "$@"`: prints the address and returns 0, or returns 1 (Node decides). */
export const APP_CONTAINER_START_SH = `# kata-ts: a CRI app container's start, when its pod's server listens (src/shim/start-sh.ts).
kata_ts_app_start() {
  ns= addr= id= bundle=
  while [ $# -gt 1 ]; do
    case $1 in
      -namespace) ns=$2 ;; -address) addr=$2 ;; -publish-binary) ;; -id) id=$2 ;; -bundle) bundle=$2 ;;
      -debug) shift; continue ;;
      *) return 1 ;;
    esac
    shift 2
  done
  [ $# -eq 1 ] && [ "$1" = start ] && [ -n "$ns" ] && [ -n "$addr" ] && [ -n "$id" ] || return 1
  case "$addr/$ns/" in *//*|*/./*|*/../*|./*|../*) return 1 ;; esac
  nl='
'
  case $addr$ns in *"$nl"*) return 1 ;; esac
  m=$(grep -o -e '"io\\.kubernetes\\.cri\\.container-type":"[a-z]*"' -e '"io\\.kubernetes\\.cri\\.sandbox-id":"[0-9a-f]*"' "\${bundle:-.}/config.json" 2>/dev/null) || return 1
  case $m in *"$nl"*"$nl"*) return 1 ;; esac
  case $m in
    '"io.kubernetes.cri.container-type":"container"'"$nl"'"io.kubernetes.cri.sandbox-id":"'*) sid=\${m#*"$nl"} ;;
    '"io.kubernetes.cri.sandbox-id":"'*"$nl"'"io.kubernetes.cri.container-type":"container"') sid=\${m%"$nl"*} ;;
    *) return 1 ;;
  esac
  sid=\${sid#'"io.kubernetes.cri.sandbox-id":"'}
  sid=\${sid%'"'}
  [ \${#sid} -eq 64 ] || return 1
  hex=$(printf '%s' "$addr/$ns/$sid" | sha256sum) || return 1
  sock=/run/containerd/s/\${hex%% *}
  [ -S "$sock" ] || return 1
  printf 'unix://%s' "$sock" >"\${bundle:-.}/address" || return 1
  # containerd wrote the runtime options on stdin: read them (as the Node path does).
  cat >/dev/null
  printf 'unix://%s' "$sock"
}
`;

/** A launcher: the short path above, else `exec NODE ENTRY "$@"` (with `env` exported first). */
export function shimShLauncher(o: { nodePath: string; entry: string; env?: Record<string, string>; comment?: string }): string {
  const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
  const env = Object.entries(o.env ?? {}).map(([k, v]) => `: "\${${k}=${v.replaceAll(/["\\$`]/g, (c) => `\\${c}`)}}"\nexport ${k}`);
  return ["#!/bin/sh", ...(o.comment === undefined ? [] : [`# ${o.comment}`]), APP_CONTAINER_START_SH.trimEnd(), 'kata_ts_app_start "$@" && exit 0', ...env, `exec ${q(o.nodePath)} ${q(o.entry)} "$@"`, ""].join("\n");
}
