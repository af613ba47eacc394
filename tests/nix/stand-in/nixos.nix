# A stand-in for the part of NixOS that nix/module.nix uses: the options it
# defines, declared with the types NixOS gives them, and systemd units
# rendered to text the way NixOS writes unit files (sections in this order,
# keys sorted, a list as one line per element, `Environment="K=V"` quoted as
# JSON). It evaluates with ./lib.nix and with nixpkgs' own lib alike.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  # NixOS's unit names: what `wantedBy`, `after` and friends accept.
  unitName = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  # A [Service] or [Unit] value: a list is a repeated key and concatenates
  # with other lists; anything else must be defined once or identically.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      if builtins.all (d: builtins.isList d.value) defs then
        builtins.concatLists (map (d: d.value) defs)
      else if builtins.any (d: builtins.isList d.value) defs then
        throw "The definitions for systemd unit options should be either all lists or all non-lists (${lib.showOption loc})."
      else
        lib.mergeEqualOption loc defs;
  };

  # The [Service] values NixOS checks when the unit is evaluated.
  knownValues = {
    Type = [
      "exec"
      "simple"
      "forking"
      "oneshot"
      "dbus"
      "notify"
      "notify-reload"
      "idle"
    ];
    Restart = [
      "no"
      "on-success"
      "on-failure"
      "on-abnormal"
      "on-abort"
      "on-watchdog"
      "always"
    ];
  };
  plainValue =
    v:
    if
      builtins.elem (v._type or null) [
        "override"
        "if"
      ]
    then
      v.content
    else
      v;
  validServiceConfig =
    attrs:
    builtins.all (
      key: !(attrs ? ${key}) || builtins.elem (plainValue attrs.${key}) knownValues.${key}
    ) (builtins.attrNames knownValues);

  serviceOptions = {
    options = {
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      wantedBy = mkOption {
        type = types.listOf unitName;
        default = [ ];
      };
      wants = mkOption {
        type = types.listOf unitName;
        default = [ ];
      };
      requires = mkOption {
        type = types.listOf unitName;
        default = [ ];
      };
      after = mkOption {
        type = types.listOf unitName;
        default = [ ];
      };
      before = mkOption {
        type = types.listOf unitName;
        default = [ ];
      };
      path = mkOption {
        type = types.listOf (
          types.oneOf [
            types.package
            types.str
          ]
        );
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      serviceConfig = mkOption {
        type = types.addCheck (types.attrsOf unitOption) validServiceConfig;
        default = { };
      };
    };
  };

  # One `KEY=VALUE` line per value, keys in order.
  toSection =
    attrs:
    lib.concatStrings (
      lib.concatLists (
        lib.mapAttrsToList (
          key: value:
          map (
            v:
            "${key}=${
              if v == true then
                "true"
              else if v == false then
                "false"
              else
                toString v
            }\n"
          ) (if builtins.isList value then value else [ value ])
        ) attrs
      )
    );

  nonEmpty = key: list: lib.optionalAttrs (list != [ ]) { ${key} = toString list; };

  serviceText =
    service:
    let
      environment =
        service.environment
        // lib.optionalAttrs (service.path != [ ]) {
          PATH = lib.concatMapStringsSep ":" (p: "${p}/bin:${p}/sbin") service.path;
        };
      unitSection =
        nonEmpty "Requires" service.requires
        // nonEmpty "Wants" service.wants
        // nonEmpty "After" service.after
        // nonEmpty "Before" service.before
        // lib.optionalAttrs (service.description != "") { Description = service.description; }
        // service.unitConfig;
    in
    "[Unit]\n"
    + toSection unitSection
    + "\n[Service]\n"
    + lib.concatStrings (
      lib.mapAttrsToList (
        name: value: lib.optionalString (value != null) "Environment=${builtins.toJSON "${name}=${value}"}\n"
      ) environment
    )
    + toSection service.serviceConfig
    + lib.optionalString (service.wantedBy != [ ]) "\n[Install]\nWantedBy=${toString service.wantedBy}\n";
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    nix.package = mkOption {
      type = types.package;
      default = pkgs.nix;
    };
    system.checks = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceOptions);
      default = { };
    };
    # What NixOS writes: systemd.units."NAME.service".text, and .unit, a
    # directory holding the unit file.
    systemd.units = mkOption {
      type = types.attrsOf types.unspecified;
      default = { };
    };
  };

  config.systemd.units = lib.mapAttrs' (
    name: service:
    lib.nameValuePair "${name}.service" rec {
      text = serviceText service;
      unit = pkgs.runCommand "unit-${name}.service" {
        inherit text;
        passAsFile = [ "text" ];
      } ''mkdir -p $out && cp "$textPath" "$out/${name}.service"'';
    }
  ) config.systemd.services;
}
