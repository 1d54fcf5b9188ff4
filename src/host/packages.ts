// The Debian packages kata-ts needs on a host, and why each is there.
export interface HostPackage {
  name: string;
  why: string;
  /**
   * Skip the package when this command is already on PATH, from whatever package: e.g. a kubectl
   * from Kubernetes' or Google's apt repository owns /usr/bin/kubectl, and Debian's
   * kubernetes-client would then conflict with it.
   */
  unlessCommand?: string;
}

export const hostPackages: readonly HostPackage[] = [
  { name: "qemu-system-x86", why: "the VMM (microvm machine) and virtiofsd" },
  { name: "qemu-utils", why: "disk image tools" },
  { name: "qemu-user", why: "bench/agent-runtime: the guest agent's start under TCG without a VM (qemu-x86_64)" },
  { name: "containerd", why: "the container manager kata-ts plugs into (and the e2e tests drive)" },
  { name: "runc", why: "the trusted runtime beside kata-ts, and the benchmarks' baseline" },
  { name: "crun", why: "the OCI runtime that creates containers inside the guest" },
  { name: "containernetworking-plugins", why: "CNI plugins (bridge, host-local, loopback)" },
  { name: "busybox-static", why: "guest init tools and test images" },
  { name: "socat", why: "the guest agent's vsock bridge (copied into the guest image) and its host-side test" },
  { name: "tini", why: "a minimal init for test containers" },
  { name: "erofs-utils", why: "builds the read-only guest image" },
  { name: "e2fsprogs", why: "ext4 images" },
  { name: "cpio", why: "initramfs archives" },
  { name: "kmod", why: "depmod for the guest's module tree" },
  { name: "iproute2", why: "ip and tc: netns, taps and mirred redirects" },
  { name: "iptables", why: "port-forward: loopback DNAT to the guest in the pod netns (docs/network.md); iptables in the busybox test image (packet-filter tests in pods)" },
  { name: "procps", why: "sysctl: route_localnet on the port-forward tap" },
  { name: "lz4", why: "unpacks the Debian kernel into a vmlinux" },
  { name: "linux-source-6.1", why: "the guest kernel's source (kata-ts builds the guest kernel from it)" },
  { name: "build-essential", why: "gcc and make for the guest kernel build" },
  { name: "flex", why: "the guest kernel build (Kconfig lexer)" },
  { name: "bison", why: "the guest kernel build (Kconfig parser)" },
  { name: "bc", why: "the guest kernel build (generated timer constants)" },
  { name: "libelf-dev", why: "the guest kernel build (objtool, for the ORC unwinder)" },
  { name: "xz-utils", why: "unpacks the guest kernel source tarball" },
  { name: "patch", why: "applies the project's guest kernel patches (src/guest/kernel/patches)" },
  { name: "zstd", why: "compressed kernel modules" },
  { name: "skopeo", why: "OCI image handling for test images" },
  { name: "umoci", why: "OCI image layout for test images" },
  { name: "kubernetes-client", why: "kubectl for the installer DaemonSet's image (kata-ts build-installer-image)", unlessCommand: "kubectl" },
];
