# Store paths that are themselves symlinks, and top levels that try to lead
# through them out of their closure. `which` picks the top level:
#   "links"      a toolbox whose closure holds symlink store paths pointing at
#                the host's /etc, /etc/shadow, / and a store path outside the
#                closure (plus `added`, a link made with `nix-store --add`)
#   "etc-link"   /etc is a link to the store path that links to /etc
#   "bin-decoy"  /bin is a link to a store path outside the closure, reached
#                through a symlink store path
#   "etc-up"     /etc is a link into the store path that links to ../..
{ busyboxFile ? /usr/bin/busybox, which ? "links", added ? null }:
let
  t = import ./lib.nix { inherit busyboxFile; };
  decoy = import ./decoy.nix { inherit busyboxFile; };
  link = name: target: t.script name "ln -s ${target} $out";
  toEtc = link "nucleus-link-etc" "/etc";
  toShadow = link "nucleus-link-shadow" "/etc/shadow";
  toHostname = link "nucleus-link-hostname" "/etc/hostname";
  toRoot = link "nucleus-link-up" "../..";
  # The decoy's path as text only: no reference, so not in the closure.
  toDecoy = link "nucleus-link-decoy" (builtins.unsafeDiscardStringContext "${decoy}");
  addedPath = if added == null then "" else builtins.storePath added;
  tops = {
    links = t.toolbox "nucleus-symlinks" ''
      echo ${toEtc} > $out/etc/to-etc
      echo ${toShadow} > $out/etc/to-shadow
      echo ${toHostname} > $out/etc/to-hostname
      echo ${toRoot} > $out/etc/to-root
      echo ${toDecoy} > $out/etc/to-decoy
      echo ${addedPath} > $out/etc/added
    '';
    etc-link = t.script "nucleus-escape-etc-link" ''
      mkdir -p $out
      ln -s ${t.busybox}/bin $out/bin
      ln -s ${toEtc} $out/etc
    '';
    bin-decoy = t.script "nucleus-escape-bin-decoy" ''
      mkdir -p $out
      ln -s ${toDecoy} $out/bin
    '';
    etc-up = t.script "nucleus-escape-etc-up" ''
      mkdir -p $out
      ln -s ${t.busybox}/bin $out/bin
      ln -s ${toRoot}/etc $out/etc
    '';
  };
in
tops.${which}
