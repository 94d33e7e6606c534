# clustrix test lab: sessions on the PBS ssh port get the PBS-on-Slurm wrappers first in PATH
# (login shells reset PATH in /etc/profile; sshd's SetEnv only covers `ssh host CMD`).
if [ "${CLUSTRIX_LAB_FLAVOR:-}" = pbs ]; then
  case ":$PATH:" in *:@PBS_BIN@:*) ;; *) PATH="@PBS_BIN@:$PATH"; export PATH;; esac
fi
