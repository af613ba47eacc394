# A NixOS configuration that evaluates but that nucleus refuses: building
# the system fails in `nucleus check-args` with nucleus's own message
# (`--pids` must be at least 50).
{ pkgs, ... }:
{
  services.nucleus = {
    enable = true;
    containers.refused = {
      closure = pkgs.hello;
      command = [ "/bin/hello" ];
      pids = 10;
    };
  };
}
