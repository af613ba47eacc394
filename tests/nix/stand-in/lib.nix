# A stand-in for the part of nixpkgs' `lib` that nix/module.nix and the
# stand-in NixOS (./nixos.nix) use, written against nixpkgs' documented
# semantics so that the module can be evaluated where there is no nixpkgs:
#
#   - evalModules: modules as functions, attribute sets or files; `imports`;
#     `options` / `config` or the short form; option declarations merged into
#     one tree; a definition of an undeclared option is an error.
#   - Definitions: mkIf (conditions evaluated only where an option is
#     merged, and pushed into attribute sets first, so a condition may depend
#     on `config`), mkMerge, mkOverride / mkOptionDefault (the
#     numerically lowest priority wins; an option's default is
#     mkOptionDefault).
#   - Types check every definition and merge as nixpkgs' do: equal values
#     for scalars, one definition for packages, concatenation for lists,
#     per attribute for attrsOf, a module evaluation for submodules. An
#     option without any definition is null (nullOr), empty (lists,
#     attribute sets) or an error (the rest), as in nixpkgs.
#
# Only what the module and the stand-in NixOS use is here; anything else is
# missing on purpose, so that a new use shows up as an evaluation error.
let
  inherit (builtins)
    all
    any
    attrNames
    concatLists
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    head
    isAttrs
    isBool
    isFloat
    isFunction
    isInt
    isList
    isPath
    isString
    length
    listToAttrs
    mapAttrs
    match
    tail
    typeOf
    ;

  # ----------------------------------------------------------------------
  # Attribute sets, lists and strings.

  nameValuePair = name: value: { inherit name value; };
  filterAttrs =
    pred: set:
    listToAttrs (concatMap (n: if pred n set.${n} then [ (nameValuePair n set.${n}) ] else [ ]) (attrNames set));
  mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
  mapAttrs' = f: set: listToAttrs (mapAttrsToList f set);
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalString = cond: s: if cond then s else "";
  optionalAttrs = cond: set: if cond then set else { };
  concatStrings = concatStringsSep "";
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  last = list: builtins.elemAt list (length list - 1);
  concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
  isDerivation = v: isAttrs v && (v.type or null) == "derivation";
  isStringLike = v: isString v || isPath v || (isAttrs v && (v ? outPath || v ? __toString));
  isStorePath = v: isStringLike v && match "${builtins.storeDir}/[^/]+" (toString v) != null;

  # nixpkgs' shell quoting: words made only of safe characters stay as they
  # are; anything else is single-quoted, each ' written as '\''.
  escapeShellArg =
    arg:
    let
      s = toString arg;
    in
    if match "[[:alnum:],._+:@%/-]+" s != null then s else "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] s}'";
  escapeShellArgs = concatMapStringsSep " " escapeShellArg;

  # ----------------------------------------------------------------------
  # Options and definitions.

  # mkOption takes exactly the arguments nixpkgs' does.
  mkOption =
    {
      default ? null,
      defaultText ? null,
      example ? null,
      description ? null,
      relatedPackages ? null,
      type ? null,
      apply ? null,
      internal ? null,
      visible ? null,
      readOnly ? null,
    }@attrs:
    attrs // { _type = "option"; };
  isOption = v: isAttrs v && (v._type or null) == "option";
  mkEnableOption =
    name:
    mkOption {
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
      type = types.bool;
    };
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };
  literalMD = text: {
    _type = "literalMD";
    inherit text;
  };

  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };
  mkOptionDefault = mkOverride 1500;
  defaultPriority = 100;

  showOption = concatMapStringsSep "." (
    part: if match "[a-zA-Z_][a-zA-Z0-9_'-]*" part != null || part == "*" then part else builtins.toJSON part
  );
  showDefs = concatMapStringsSep "" (
    d:
    "\n- In `${d.file}': "
    + (if isString d.value || isInt d.value || isBool d.value then builtins.toJSON d.value else "a ${typeOf d.value}")
  );

  # An attribute set of definitions, with mkMerge / mkIf / mkOverride
  # around it, as a list of plain attribute sets whose values carry the
  # conditions and priorities.
  pushDown =
    v:
    let
      wrapEach = wrap: map (set: if isAttrs set then mapAttrs (_: wrap) set else set);
    in
    if (v._type or null) == "merge" then
      concatMap pushDown v.contents
    else if (v._type or null) == "if" then
      wrapEach (mkIf v.condition) (pushDown v.content)
    else if (v._type or null) == "override" then
      wrapEach (mkOverride v.priority) (pushDown v.content)
    else
      [ v ];

  # One definition as the list of values it contributes: mkMerge flattened,
  # mkIf decided.
  discharge =
    v:
    if (v._type or null) == "merge" then
      concatMap discharge v.contents
    else if (v._type or null) == "if" then
      if !isBool v.condition then
        throw "mkIf called with a non-Boolean condition"
      else if v.condition then
        discharge v.content
      else
        [ ]
    else
      [ v ];

  priorityOf = d: if (d.value._type or null) == "override" then d.value.priority else defaultPriority;
  highestPriority = defs: foldl' (p: d: if priorityOf d < p then priorityOf d else p) 9999 defs;
  withoutOverride = d: if (d.value._type or null) == "override" then d // { value = d.value.content; } else d;

  # The definitions of one option (a list of { file, value }) merged by its
  # type: { value } when there is one, { } when every definition vanished.
  mergeDefinitions =
    loc: type: defs:
    let
      values = concatMap (d: map (value: { inherit (d) file; inherit value; }) (discharge d.value)) defs;
      top = highestPriority values;
      kept = map withoutOverride (filter (d: priorityOf d == top) values);
      wrong = filter (d: !type.check d.value) kept;
    in
    if kept == [ ] then
      { }
    else if wrong != [ ] then
      throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs wrong}"
    else
      { value = type.merge loc kept; };

  mergeEqualOption =
    loc: defs:
    if all (d: d.value == (head defs).value) defs then
      (head defs).value
    else
      throw "The option `${showOption loc}' has conflicting definition values:${showDefs defs}";
  mergeOneOption =
    loc: defs:
    if length defs == 1 then
      (head defs).value
    else
      throw "The option `${showOption loc}' is defined multiple times while it's expected to be unique.${showDefs defs}";
  mergeDefaultOption =
    loc: defs:
    let
      vs = map (d: d.value) defs;
    in
    if length vs == 1 then
      head vs
    else if all isList vs then
      concatLists vs
    else if all isAttrs vs then
      foldl' (a: b: a // b) { } vs
    else if all isBool vs then
      any (x: x) vs
    else if all isString vs then
      concatStringsSep "" vs
    else
      throw "Cannot merge definitions of `${showOption loc}'.${showDefs defs}";

  # ----------------------------------------------------------------------
  # Types.

  mkOptionType =
    {
      name,
      description ? name,
      check ? (_: true),
      merge ? mergeDefaultOption,
      # The value of an option that has no definition at all: { value = …; },
      # or { } when it then has no value.
      emptyValue ? { },
      ...
    }:
    {
      _type = "option-type";
      inherit
        name
        description
        check
        merge
        emptyValue
        ;
    };

  scalar =
    name: check:
    mkOptionType {
      inherit name check;
      merge = mergeEqualOption;
    };
  intBetween = low: high: scalar "integer between ${toString low} and ${toString high}" (x: isInt x && x >= low && x <= high);

  types = rec {
    # The type, refusing what `extraCheck` refuses as well.
    addCheck = type: extraCheck: type // { check = x: type.check x && extraCheck x; };
    unspecified = mkOptionType { name = "unspecified"; };
    bool = scalar "boolean" isBool;
    int = scalar "signed integer" isInt;
    float = scalar "floating point number" isFloat;
    str = scalar "string" isString;
    singleLineStr = scalar "(optionally newline-terminated) single-line string" (
      x: isString x && match "[^\n]*\n?" x != null
    );
    strMatching = pattern: scalar "string matching the pattern ${pattern}" (x: isString x && match pattern x != null);
    enum = values: scalar "one of ${concatMapStringsSep ", " builtins.toJSON values}" (x: elem x values);
    ints = {
      positive = scalar "positive integer, meaning >0" (x: isInt x && x > 0);
      unsigned = scalar "unsigned integer, meaning >=0" (x: isInt x && x >= 0);
      between = intBetween;
      u16 = intBetween 0 65535;
    };
    port = ints.u16;
    # nixpkgs' `path`: anything string-like that is absolute; a Nix path
    # literal is not copied to the store by the type.
    path = scalar "absolute path" (x: isStringLike x && builtins.substring 0 1 (toString x) == "/");
    package = mkOptionType {
      name = "package";
      check = x: isDerivation x || isStorePath x;
      merge =
        loc: defs:
        let
          v = mergeOneOption loc defs;
        in
        if isDerivation v then
          v
        else
          {
            type = "derivation";
            name = builtins.substring 33 (-1) (baseNameOf (toString v));
            outPath = toString v;
          };
    };
    anything = mkOptionType {
      name = "anything";
      merge =
        loc: defs:
        let
          kinds = unique (map (d: if isAttrs d.value && isStringLike d.value then "coercible" else typeOf d.value) defs);
        in
        if length kinds != 1 then
          throw "The option `${showOption loc}' has conflicting option types"
        else if head kinds == "set" then
          (attrsOf anything).merge loc defs
        else if head kinds == "coercible" then
          mergeOneOption loc defs
        else
          mergeEqualOption loc defs;
    };

    nullOr =
      elemType:
      mkOptionType {
        name = "nullOr";
        description = "null or ${elemType.description}";
        check = x: x == null || elemType.check x;
        merge =
          loc: defs:
          let
            nulls = length (filter (d: d.value == null) defs);
          in
          if nulls == length defs then
            null
          else if nulls != 0 then
            throw "The option `${showOption loc}' is defined both null and not null"
          else
            elemType.merge loc defs;
        emptyValue.value = null;
      };

    listOf =
      elemType:
      mkOptionType {
        name = "listOf";
        description = "list of ${elemType.description}";
        check = isList;
        emptyValue.value = [ ];
        merge =
          loc: defs:
          concatLists (
            builtins.genList (
              n:
              let
                d = builtins.elemAt defs n;
              in
              concatLists (
                builtins.genList (
                  m:
                  let
                    merged = mergeDefinitions (loc ++ [
                      "[definition ${toString (n + 1)}-entry ${toString (m + 1)}]"
                    ]) elemType [
                      {
                        inherit (d) file;
                        value = builtins.elemAt d.value m;
                      }
                    ];
                  in
                  if merged ? value then [ merged.value ] else [ ]
                ) (length d.value)
              )
            ) (length defs)
          );
      };
    nonEmptyListOf =
      elemType:
      listOf elemType
      // {
        description = "non-empty list of ${elemType.description}";
        check = x: isList x && x != [ ];
        emptyValue = { };
      };

    attrsOf =
      elemType:
      mkOptionType {
        name = "attrsOf";
        description = "attribute set of ${elemType.description}";
        check = isAttrs;
        emptyValue.value = { };
        merge =
          loc: defs:
          let
            names = unique (concatMap (d: attrNames d.value) defs);
            merged = map (
              n:
              nameValuePair n (
                mergeDefinitions (loc ++ [ n ]) elemType (
                  concatMap (
                    d:
                    optional (d.value ? ${n}) {
                      inherit (d) file;
                      value = d.value.${n};
                    }
                  ) defs
                )
              )
            ) names;
          in
          listToAttrs (map (p: nameValuePair p.name p.value.value) (filter (p: p.value ? value) merged));
      };

    either =
      t1: t2:
      mkOptionType {
        name = "either";
        description = "${t1.description} or ${t2.description}";
        check = x: t1.check x || t2.check x;
        merge =
          loc: defs:
          if all (d: t1.check d.value) defs then
            t1.merge loc defs
          else if all (d: t2.check d.value) defs then
            t2.merge loc defs
          else
            mergeOneOption loc defs;
      };
    oneOf = ts: foldl' either (head ts) (tail ts);

    # A submodule: every definition is a module (an attribute set in the
    # short form, a function, or a file) evaluated together with the
    # declaring module; `name` is the attribute name above it.
    submodule =
      module:
      mkOptionType {
        name = "submodule";
        description = "submodule";
        check = x: isAttrs x || isFunction x || isPath x;
        merge =
          loc: defs:
          (evalModules {
            modules = [ module ] ++ map (d: { _file = d.file; imports = [ d.value ]; }) defs;
            specialArgs.name = last loc;
            prefix = loc;
          }).config;
        emptyValue.value =
          (evalModules {
            modules = [ module ];
            specialArgs.name = "‹name›";
          }).config;
      };
  };

  # ----------------------------------------------------------------------
  # Modules.

  # Every module reachable through `imports`, as { file, options, config }.
  collectModules =
    args: file: m:
    let
      loaded = if isPath m || isString m then import m else m;
      from = if isPath m || isString m then toString m else file;
      value = if isFunction loaded then loaded args else loaded;
      here = value._file or from;
      structured = value ? options || value ? config;
      unknownKeys = filter (
        k:
        !(elem k [
          "_file"
          "imports"
          "options"
          "config"
        ])
      ) (attrNames value);
    in
    if structured && unknownKeys != [ ] then
      throw "Module `${here}' has an unsupported attribute `${head unknownKeys}'."
    else
      [
        {
          file = here;
          options = value.options or { };
          config = if structured then value.config or { } else removeAttrs value [ "_file" "imports" ];
        }
      ]
      ++ concatMap (collectModules args here) (value.imports or [ ]);

  # All modules' option trees as one.
  mergeDeclarations =
    loc: a: b:
    if isOption a || isOption b then
      throw "The option `${showOption loc}' is declared more than once."
    else
      a // mapAttrs (n: v: if a ? ${n} then mergeDeclarations (loc ++ [ n ]) a.${n} v else v) b;

  # The value of an option tree under `loc`, from definitions of it.
  evalTree =
    loc: declarations: defs:
    let
      sets = concatMap (d: map (value: { inherit (d) file; inherit value; }) (pushDown d.value)) defs;
      notAttrs = filter (d: !isAttrs d.value) sets;
      undeclared = filter (n: !(declarations ? ${n}) && n != "_module") (unique (concatMap (d: attrNames d.value) sets));
      defsOf = n: concatMap (d: optional (d.value ? ${n}) { inherit (d) file; value = d.value.${n}; }) sets;
    in
    if notAttrs != [ ] then
      throw "The option `${showOption loc}' is not an option but a set of options, and cannot be defined as ${builtins.toJSON (head notAttrs).value}."
    else if undeclared != [ ] then
      throw "The option `${showOption (loc ++ [ (head undeclared) ])}' does not exist."
    else
      mapAttrs (
        n: decl: if isOption decl then evalOption (loc ++ [ n ]) decl (defsOf n) else evalTree (loc ++ [ n ]) decl (defsOf n)
      ) declarations;

  evalOption =
    loc: option: defs:
    let
      type = if option.type or null == null then types.unspecified else option.type;
      defaults = optional (option ? default) {
        file = "the option's default";
        value = mkOptionDefault option.default;
      };
      merged = mergeDefinitions loc type (defaults ++ defs);
      value =
        if merged ? value then
          merged.value
        else if type.emptyValue ? value then
          type.emptyValue.value
        else
          throw "The option `${showOption loc}' was accessed but has no value defined. Try setting the option.";
    in
    if option.apply or null == null then value else option.apply value;

  evalModules =
    {
      modules,
      specialArgs ? { },
      prefix ? [ ],
    }:
    let
      args = specialArgs // {
        inherit lib config options;
      };
      collected = concatMap (collectModules args "<unknown file>") modules;
      options = foldl' (mergeDeclarations prefix) { } (map (m: m.options) collected);
      config = evalTree prefix options (map (m: { inherit (m) file; value = m.config; }) collected);
    in
    {
      inherit config options;
    };

  lib = {
    inherit
      nameValuePair
      filterAttrs
      mapAttrsToList
      mapAttrs'
      optional
      optionals
      optionalString
      optionalAttrs
      concatStrings
      unique
      last
      concatMapStringsSep
      isDerivation
      isStringLike
      escapeShellArg
      escapeShellArgs
      mkOption
      mkEnableOption
      literalExpression
      literalMD
      mkIf
      mkMerge
      mkOverride
      mkOptionDefault
      mkOptionType
      mergeEqualOption
      mergeOneOption
      showOption
      types
      evalModules
      ;
    inherit (builtins)
      attrNames
      concatLists
      concatStringsSep
      mapAttrs
      ;
  };
in
lib
