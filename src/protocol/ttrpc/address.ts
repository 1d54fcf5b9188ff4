// Socket addresses as containerd writes them: a plain path or unix:///path.
const UNIX_PREFIX = "unix://";

export function socketPathOf(address: string): string {
  return address.startsWith(UNIX_PREFIX) ? address.slice(UNIX_PREFIX.length) : address;
}
