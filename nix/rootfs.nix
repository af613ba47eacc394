# mkRootfs: a symlink tree of `packages` with the directories nucleus shows
# at the sandbox's /bin /sbin /lib /lib64 /usr /etc, usable as nucleus's
# INSTALLABLE. Every symlink in it points into the closure. A small /etc
# (root and nobody in passwd/group, nsswitch.conf) is added at low priority,
# so a package's own files win over it. Part of nix/lib.nix.
{
  mkRootfs =
    {
      pkgs,
      packages,
      name ? "nucleus-rootfs",
      baseEtc ? true,
    }:
    let
      etc = pkgs.runCommand "nucleus-base-etc" { meta.priority = 100; } ''
        mkdir -p $out/etc
        printf '%s\n' 'root:x:0:0:root:/:/bin/sh' 'nobody:x:65534:65534:nobody:/:/bin/false' > $out/etc/passwd
        printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > $out/etc/group
        printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > $out/etc/nsswitch.conf
      '';
    in
    pkgs.buildEnv {
      inherit name;
      paths = packages ++ (if baseEtc then [ etc ] else [ ]);
      pathsToLink = [
        "/bin"
        "/sbin"
        "/lib"
        "/lib64"
        "/usr"
        "/etc"
      ];
    };
}
