#!/usr/bin/env bash
# clustrix test lab: bring up real schedulers on this Debian 12 machine, reachable over ssh
# on 127.0.0.1 only (see README.md in this directory).
#
#   bash tests/lab/up.sh [--no-smoke]
#
# Idempotent: installs missing packages, (re)writes configs, starts whatever is not running
# (stale pid files from SIGKILLed daemons are detected), then checks every service with a
# real request and prints one line per service. Exit 0 = all OK, 1 = some FAIL,
# 77 = not root / not Debian (the test runner skips the lab).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF=$HERE/conf
SMOKE=1
for arg in "$@"; do
  case $arg in
    --no-smoke) SMOKE=0 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "up.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "up.sh: the clustrix lab must be brought up as root (it installs packages and starts daemons); skipping" >&2
  exit 77
fi
if ! grep -qs '^ID=debian' /etc/os-release || ! command -v apt-get >/dev/null; then
  echo "up.sh: the clustrix lab needs Debian 12 (bookworm) with apt; this is not Debian; skipping" >&2
  exit 77
fi

# shellcheck source=lib.sh
. "$HERE/lib.sh"

SECONDS=0
log() { printf '[up %3ds] %s\n' "$SECONDS" "$*"; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$LAB_STATE" "$LAB_LOGDIR"
# one bring-up at a time (the lock fd is closed for every daemon we start, see spawn)
exec 9>/run/clustrix-lab-up.lock
flock -w 900 9 || die "another up.sh holds /run/clustrix-lab-up.lock"

HOST=$(hostname -s)
[ -n "$HOST" ] || die "hostname -s is empty"

# spawn NAME CMD...: start a daemon detached from this shell: own session, clean
# environment, no inherited stdio or lock fd (a caller reading our stdout must see EOF).
spawn() {
  local name=$1; shift
  echo "--- $(date '+%F %T') $*" >>"$LAB_LOGDIR/$name.start.log"
  env -i PATH="$PATH" LANG=C.UTF-8 HOME=/root SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" \
    ${SPAWN_ENV:-} setsid "$@" </dev/null >>"$LAB_LOGDIR/$name.start.log" 2>&1 9>&- &
  wait $! 2>/dev/null || true   # the daemons fork; setsid's child returns at once
}

# render TEMPLATE: print the template with the lab's values substituted
render() {
  sed -e "s|@HOST@|$HOST|g" -e "s|@LAB_USER@|$LAB_USER|g" -e "s|@LAB_PW_USER@|$LAB_PW_USER|g" \
      -e "s|@LAB_SSH@|$LAB_SSH|g" -e "s|@PBS_BIN@|$LAB_PBS_BIN|g" -e "s|@SSHD_PID@|$SSHD_PID|g" \
      -e "s|@PORT_MAIN@|$LAB_PORT_MAIN|g" -e "s|@PORT_PBS@|$LAB_PORT_PBS|g" "$1"
}

# install_file SRC DEST MODE [OWNER]: copy when the content differs; returns 0 if it changed
install_file() {
  local src=$1 dest=$2 mode=$3 owner=${4:-root:root}
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    chmod "$mode" "$dest"; chown "$owner" "$dest"
    return 1
  fi
  install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest"
  return 0
}
TMPD=$(mktemp -d)
POLICY_RC_CREATED=0
cleanup() {
  rm -rf "$TMPD"
  [ "$POLICY_RC_CREATED" = 1 ] && rm -f /usr/sbin/policy-rc.d
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# 1. packages (only the missing ones)
PKGS="openssh-server openssh-client sshpass python3 python3-venv procps psmisc iproute2 rsync bc
  munge mariadb-server slurmdbd slurmctld slurmd slurm-client slurm-wlm-basic-plugins
  slurm-wlm-mysql-plugin libslurm-perl libslurmdb-perl libswitch-perl
  gridengine-master gridengine-exec gridengine-client"
# shellcheck disable=SC2086
INSTALLED=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $PKGS 2>/dev/null | awk '$1=="ii"{print $2}')
MISSING=""
for p in $PKGS; do
  printf '%s\n' "$INSTALLED" | grep -qx "$p" || MISSING="$MISSING $p"
done
APT_UPDATED=0
apt_update() {
  [ "$APT_UPDATED" = 1 ] && return 0
  log "apt-get update"
  apt-get update -q >>"$LAB_LOGDIR/apt.log" 2>&1 || die "apt-get update failed (see $LAB_LOGDIR/apt.log)"
  APT_UPDATED=1
}
if [ -n "$MISSING" ]; then
  apt_update
  log "installing:$MISSING"
  # the postinsts create the Grid Engine cell only when told to, with this machine as master
  debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginemaster string $HOST
gridengine-common shared/gridenginecell string default
gridengine-master shared/gridengineconfig boolean true
gridengine-master shared/gridenginemaster string $HOST
gridengine-master shared/gridenginecell string default
EOF
  if [ ! -e /usr/sbin/policy-rc.d ]; then   # keep the packages from starting daemons
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $MISSING \
      >>"$LAB_LOGDIR/apt.log" 2>&1 || { tail -n 30 "$LAB_LOGDIR/apt.log"; die "apt-get install failed (see $LAB_LOGDIR/apt.log)"; }
  if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
fi

# ---------------------------------------------------------------------------------------
# 2. host name must resolve (Slurm and Grid Engine use it)
if ! getent hosts "$HOST" >/dev/null; then
  log "adding '127.0.1.1 $HOST' to /etc/hosts"
  printf '127.0.1.1\t%s\n' "$HOST" >>/etc/hosts
fi

# ---------------------------------------------------------------------------------------
# 3. users, keys, password
if ! id -u "$LAB_USER" >/dev/null 2>&1; then
  uidopt=""
  getent passwd "$LAB_UID" >/dev/null || uidopt="-u $LAB_UID"
  # shellcheck disable=SC2086
  useradd -m -s /bin/bash $uidopt "$LAB_USER" || die "useradd $LAB_USER failed"
fi
# "*" = no password but not locked (a "!" account may be refused by sshd)
[ "$(getent shadow "$LAB_USER" | cut -d: -f2)" = "*" ] || usermod -p '*' "$LAB_USER"
if ! id -u "$LAB_PW_USER" >/dev/null 2>&1; then
  useradd -m -s /bin/bash "$LAB_PW_USER" || die "useradd $LAB_PW_USER failed"
fi

install -d -m 0755 "$LAB_SSH" "$LAB_SSH/authorized_keys"
install -d -m 0700 "$LAB_SSH/host"
[ -s "$LAB_SSH/id_ed25519" ] && [ -s "$LAB_SSH/id_ed25519.pub" ] ||
  { rm -f "$LAB_SSH/id_ed25519" "$LAB_SSH/id_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C "clustrix-lab-client" -f "$LAB_SSH/id_ed25519" || die "ssh-keygen failed"; }
chmod 0600 "$LAB_SSH/id_ed25519"
HOSTKEY=$LAB_SSH/host/ssh_host_ed25519_key
[ -s "$HOSTKEY" ] && [ -s "$HOSTKEY.pub" ] ||
  { rm -f "$HOSTKEY" "$HOSTKEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "clustrix-lab-host" -f "$HOSTKEY" || die "ssh-keygen (host key) failed"; }
chmod 0600 "$HOSTKEY"
cp "$LAB_SSH/id_ed25519.pub" "$TMPD/ak"
install_file "$TMPD/ak" "$LAB_SSH/authorized_keys/$LAB_USER" 0644 || true
: >"$TMPD/kh"
for port in "$LAB_PORT_MAIN" "$LAB_PORT_PBS"; do
  for h in 127.0.0.1 localhost; do
    printf '[%s]:%s %s\n' "$h" "$port" "$(cut -d' ' -f1,2 "$HOSTKEY.pub")" >>"$TMPD/kh"
  done
done
install_file "$TMPD/kh" "$LAB_SSH/known_hosts" 0644 || true
render "$CONF/ssh_config" >"$TMPD/sc"; install_file "$TMPD/sc" "$LAB_SSH/ssh_config" 0644 || true

PWFILE=$LAB_SSH/password
if [ ! -s "$PWFILE" ]; then
  (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$PWFILE")
fi
chmod 0600 "$PWFILE"
printf '%s:%s\n' "$LAB_PW_USER" "$(cat "$PWFILE")" | chpasswd || die "chpasswd failed"

# ---------------------------------------------------------------------------------------
# 4. sshd (one process, both ports)
render "$CONF/profile.sh" >"$TMPD/prof"; install_file "$TMPD/prof" /etc/profile.d/clustrix-lab.sh 0644 || true
install -d -m 0755 /run/sshd
render "$CONF/sshd_config" >"$TMPD/sshd"
SSHD_CHANGED=0
install_file "$TMPD/sshd" "$SSHD_CONF" 0644 && SSHD_CHANGED=1
/usr/sbin/sshd -t -f "$SSHD_CONF" 2>"$TMPD/sshd.err" || die "sshd -t: $(cat "$TMPD/sshd.err")"
touch "$SSHD_LOG"
if pid=$(lab_pid sshd); then
  if [ "$SSHD_CHANGED" = 1 ]; then log "sshd config changed: SIGHUP $pid"; kill -HUP "$pid"; sleep 0.5; fi
else
  log "starting sshd"
  rm -f "$SSHD_PID"
  spawn sshd /usr/sbin/sshd -f "$SSHD_CONF" -E "$SSHD_LOG"
fi

# ---------------------------------------------------------------------------------------
# 5. munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating the munge key"
  mungekey -c -k /etc/munge/munge.key || die "mungekey failed"
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
install -d -m 0755 -o munge -g munge /run/munge /var/log/munge /var/lib/munge
if ! lab_pid munged >/dev/null; then
  log "starting munged"
  rm -f /run/munge/munged.pid
  # --force: a SIGKILLed munged leaves its socket behind
  spawn munged runuser -u munge -- /usr/sbin/munged --force
fi

# ---------------------------------------------------------------------------------------
# 6. MariaDB (does not daemonize: start-stop-daemon --background)
install_file "$CONF/mariadb.cnf" /etc/mysql/mariadb.conf.d/99-clustrix-lab.cnf 0644 || true
install -d -m 0755 -o mysql -g mysql /run/mysqld
install -d -m 2750 -o mysql -g adm /var/log/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
  log "initialising the MariaDB data directory"
  mariadb-install-db --user=mysql >>"$LAB_LOGDIR/mariadbd.start.log" 2>&1 || die "mariadb-install-db failed"
fi
if ! lab_pid mariadbd >/dev/null; then
  log "starting mariadbd"
  rm -f /run/mysqld/mysqld.pid
  spawn mariadbd start-stop-daemon --start --background --pidfile /run/mysqld/mysqld.pid \
    --exec /usr/sbin/mariadbd -- --user=mysql --pid-file=/run/mysqld/mysqld.pid --socket=/run/mysqld/mysqld.sock
fi

# ---------------------------------------------------------------------------------------
# 7. Slurm: configs, slurmdbd, accounts, slurmctld, slurmd
install -d -m 0755 -o slurm -g slurm /var/log/slurm /var/spool/slurmctld
install -d -m 0755 /var/spool/slurmd /etc/slurm/plugstack.conf.d
render "$CONF/slurm.conf" >"$TMPD/slurm.conf"
SLURM_CHANGED=0
install_file "$CONF/slurm-epilog.sh" /etc/slurm/epilog-clustrix-lab.sh 0755 && SLURM_CHANGED=1
install_file "$TMPD/slurm.conf" /etc/slurm/slurm.conf 0644 && SLURM_CHANGED=1
DBD_CHANGED=0
install_file "$CONF/slurmdbd.conf" /etc/slurm/slurmdbd.conf 0600 slurm:slurm && DBD_CHANGED=1
[ -f /etc/slurm/plugstack.conf ] || echo 'include /etc/slurm/plugstack.conf.d/*.conf' >/etc/slurm/plugstack.conf
SPANK_PBS=$(ls /usr/lib/*/slurm-wlm/spank_pbs.so 2>/dev/null | head -n 1)
if [ -n "$SPANK_PBS" ]; then   # PBS_* variables in jobs submitted through the wrappers
  echo "optional $SPANK_PBS" >"$TMPD/pbs.conf"
  install_file "$TMPD/pbs.conf" /etc/slurm/plugstack.conf.d/pbs.conf 0644 || true
fi

# (dependent steps are skipped when what they need does not answer, instead of hanging)
MUNGE_OK=0; DB_OK=0; DBD_OK=0
lab_wait 15 sh -c 'munge -n | unmunge' && MUNGE_OK=1 || log "munge does not answer after 15 s"
if lab_wait 60 mariadb-admin ping; then
  DB_OK=1
  mariadb <"$CONF/mariadb-setup.sql" 2>"$TMPD/sql.err" || log "MariaDB setup failed: $(cat "$TMPD/sql.err")"
else
  log "MariaDB does not answer to ping after 60 s (log /var/log/mysql/error.log)"
fi

if pid=$(lab_pid slurmdbd); then
  if [ "$DBD_CHANGED" = 1 ]; then log "slurmdbd.conf changed: SIGHUP"; kill -HUP "$pid"; fi
else
  log "starting slurmdbd"
  rm -f /run/slurmdbd.pid
  spawn slurmdbd /usr/sbin/slurmdbd
fi
if [ "$MUNGE_OK$DB_OK" = 11 ]; then
  lab_wait 60 timeout 20 sacctmgr -n show cluster && DBD_OK=1 || log "slurmdbd does not answer after 60 s"
fi
if [ "$DBD_OK" = 1 ]; then
  ASSOC=$(timeout 20 sacctmgr -n -P show assoc format=cluster,account,user 2>/dev/null)
  if ! printf '%s\n' "$ASSOC" | grep -qx "clustrixlab|lab|$LAB_USER" ||
     ! printf '%s\n' "$ASSOC" | grep -qx "clustrixlab|lab|$LAB_PW_USER"; then
    log "adding Slurm accounting objects"
    timeout 20 sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx clustrixlab ||
      timeout 20 sacctmgr -i add cluster clustrixlab >/dev/null
    printf '%s\n' "$ASSOC" | grep -q '^clustrixlab|lab|' ||
      timeout 20 sacctmgr -i add account lab Cluster=clustrixlab Description=lab Organization=lab >/dev/null
    timeout 20 sacctmgr -i add user "$LAB_USER","$LAB_PW_USER" Account=lab DefaultAccount=lab >/dev/null
  fi
fi

if pid=$(lab_pid slurmctld); then
  if [ "$SLURM_CHANGED" = 1 ]; then log "slurm.conf changed: scontrol reconfigure"; scontrol reconfigure; fi
else
  log "starting slurmctld"
  rm -f /run/slurmctld.pid
  spawn slurmctld /usr/sbin/slurmctld
fi
if ! lab_pid slurmd >/dev/null; then
  log "starting slurmd"
  rm -f /run/slurmd.pid
  spawn slurmd /usr/sbin/slurmd
fi

# ---------------------------------------------------------------------------------------
# 8. Grid Engine
SGE_COMMON=$SGE_ROOT/$SGE_CELL/common
if [ ! -s "$SGE_COMMON/bootstrap" ] || [ ! -d "$SGE_SPOOL/spooldb" ] || [ -z "$(ls -A "$SGE_SPOOL/spooldb" 2>/dev/null)" ]; then
  log "creating the Grid Engine cell"
  install -d -m 0755 -o sgeadmin -g sgeadmin "$SGE_ROOT/$SGE_CELL" "$SGE_COMMON" \
    "$SGE_SPOOL/qmaster" "$SGE_SPOOL/qmaster/job_scripts" "$SGE_SPOOL/spooldb" "$SGE_SPOOL/execd"
  [ -s "$SGE_COMMON/bootstrap" ] ||
    install -m 0644 -o sgeadmin -g sgeadmin /usr/share/gridengine/default-bootstrap "$SGE_COMMON/bootstrap"
  su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL $SGE_SPOOL/spooldb sgeadmin" sgeadmin \
    >>"$LAB_LOGDIR/sge_qmaster.start.log" 2>&1 || die "Grid Engine init_cluster failed (see $LAB_LOGDIR/sge_qmaster.start.log)"
fi
echo "$HOST" >"$TMPD/act"; install_file "$TMPD/act" "$SGE_COMMON/act_qmaster" 0644 sgeadmin:sgeadmin || true
# 127.0.0.1 reverse-resolves to "localhost": tell SGE that this is the same host
echo "$HOST localhost" >"$TMPD/ali"; install_file "$TMPD/ali" "$SGE_COMMON/host_aliases" 0644 sgeadmin:sgeadmin || true
QMASTER_STARTED=0
if ! lab_pid sge_qmaster >/dev/null; then
  QMASTER_STARTED=1
  log "starting sge_qmaster"
  rm -f "$QMASTER_PID"
  spawn sge_qmaster /usr/sbin/sge_qmaster
fi
lab_wait 60 qconf -sh || log "sge_qmaster does not answer after 60 s"

# qconf objects: applied when the lab's SGE files changed or the qmaster spool was reset
for f in exechost allhosts pe_smp all.q sched global; do render "$CONF/sge/$f" >"$TMPD/sge_$f"; done
STAMP=$SGE_SPOOL/qmaster/clustrix-lab.stamp
WANT=$(cat "$TMPD"/sge_* | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! qconf -sql 2>/dev/null | grep -qx all.q; then
  log "configuring Grid Engine (hosts, pe smp, queue all.q, scheduler, global)"
  qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1
  qconf_put() {  # KIND NAME FILE: add or modify
    if qconf -s"$1" "$2" >/dev/null 2>&1; then qconf -M"$1" "$3"; else qconf -A"$1" "$3"; fi
  }
  ok=1
  qconf_put e "$HOST" "$TMPD/sge_exechost" >/dev/null 2>&1 || ok=0
  qconf_put hgrp @allhosts "$TMPD/sge_allhosts" >/dev/null 2>&1 || ok=0
  qconf_put p smp "$TMPD/sge_pe_smp" >/dev/null 2>&1 || ok=0
  qconf_put q all.q "$TMPD/sge_all.q" >/dev/null 2>&1 || ok=0
  qconf -Msconf "$TMPD/sge_sched" >/dev/null 2>&1 || ok=0
  mkdir -p "$TMPD/gconf" && cp "$TMPD/sge_global" "$TMPD/gconf/global"   # the file must be named "global"
  qconf -Mconf "$TMPD/gconf/global" >/dev/null 2>&1 || ok=0
  if [ "$ok" = 1 ]; then echo "$WANT" >"$STAMP"; else log "some qconf command failed"; fi
fi
install -d -m 0755 -o sgeadmin -g sgeadmin /run/gridengine
if [ "$QMASTER_STARTED" = 1 ] && lab_pid sge_execd >/dev/null; then
  # a running execd takes ~20 s to re-register with a new qmaster (queue state "u");
  # a restarted one registers at once (running jobs live on under their sge_shepherd)
  log "restarting sge_execd for the new sge_qmaster"
  lab_stop sge_execd >/dev/null
fi
if ! lab_pid sge_execd >/dev/null; then
  log "starting sge_execd"
  rm -f "$EXECD_PID"
  SPAWN_ENV="SGE_EXECD_PIDFILE=$EXECD_PID" spawn sge_execd /usr/sbin/sge_execd
fi

# ---------------------------------------------------------------------------------------
# 9. PBS/Torque wrappers (slurm-wlm-torque conflicts with gridengine-client: unpack only)
SLURM_VER=$(dpkg-query -W -f='${Version}' slurm-client 2>/dev/null)
if [ "$(cat "$LAB_PBS_BIN/.version" 2>/dev/null)" != "$SLURM_VER" ] || [ ! -x "$LAB_PBS_BIN/qsub" ]; then
  log "unpacking slurm-wlm-torque $SLURM_VER into $LAB_PBS_BIN"
  ( cd "$TMPD" && apt-get download -q "slurm-wlm-torque=$SLURM_VER" ) >>"$LAB_LOGDIR/apt.log" 2>&1 ||
    { apt_update; ( cd "$TMPD" && apt-get download -q "slurm-wlm-torque=$SLURM_VER" ) >>"$LAB_LOGDIR/apt.log" 2>&1; } ||
    die "apt-get download slurm-wlm-torque failed (see $LAB_LOGDIR/apt.log)"
  dpkg-deb -x "$TMPD"/slurm-wlm-torque_*.deb "$TMPD/torque" || die "dpkg-deb -x failed"
  rm -rf "$LAB_PBS_BIN"; install -d -m 0755 "$LAB_PBS_BIN"
  cp -p "$TMPD"/torque/usr/bin/* "$LAB_PBS_BIN/"
  # qalter hard-codes /usr/slurm/bin/scontrol; the others call ${FindBin::Bin}/sbatch etc.
  sed -i 's|"/usr/slurm/bin/scontrol"|"${FindBin::Bin}/scontrol"|' "$LAB_PBS_BIN/qalter"
  for c in sbatch salloc srun scancel scontrol squeue sinfo sacct; do ln -sf "/usr/bin/$c" "$LAB_PBS_BIN/$c"; done
  echo "$SLURM_VER" >"$LAB_PBS_BIN/.version"
fi

# ---------------------------------------------------------------------------------------
# 10. checks: every service must answer a real request
FAILED=""
status() {  # OK|FAIL NAME DETAIL
  printf '%-5s %-13s %s\n' "$1" "$2" "$3"
  [ "$1" = OK ] || FAILED="$FAILED $2"
}
SSH_OPTS=(-i "$LAB_SSH/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes
          -o UserKnownHostsFile="$LAB_SSH/known_hosts" -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10)
lab_ssh() {  # PORT CMD
  local port=$1; shift
  ssh "${SSH_OPTS[@]}" -p "$port" "$LAB_USER@127.0.0.1" "$@" </dev/null
}
pid_detail() { local p; p=$(lab_pid "$1") && echo "pid $p" || echo "not running (pid file $(lab_daemon_field "$1" 2))"; }

# ssh: both ports, the password account, ProxyJump through the lab sshd
out=""
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  out=$(lab_ssh "$LAB_PORT_MAIN" 'echo ok $(command -v qsub)' 2>&1) && break; sleep 0.5
done
case $out in
  "ok /usr/bin/qsub") status OK sshd-$LAB_PORT_MAIN "127.0.0.1:$LAB_PORT_MAIN $(pid_detail sshd) (qsub -> /usr/bin/qsub, Grid Engine)" ;;
  *) status FAIL sshd-$LAB_PORT_MAIN "ssh login failed: $(echo "$out" | tail -n 2 | tr '\n' ' ') (log $SSHD_LOG)" ;;
esac
out=$(lab_ssh "$LAB_PORT_PBS" 'echo ok $(command -v qsub)' 2>&1)
case $out in
  "ok $LAB_PBS_BIN/qsub") status OK sshd-$LAB_PORT_PBS "127.0.0.1:$LAB_PORT_PBS (qsub -> $LAB_PBS_BIN/qsub, Slurm's PBS wrappers)" ;;
  *) status FAIL sshd-$LAB_PORT_PBS "ssh login failed or wrong qsub: $(echo "$out" | tail -n 2 | tr '\n' ' ')" ;;
esac
out=$(sshpass -f "$PWFILE" ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$LAB_SSH/known_hosts" \
        -o GlobalKnownHostsFile=/dev/null -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 \
        -o PreferredAuthentications=password,keyboard-interactive -o ConnectTimeout=10 \
        -p "$LAB_PORT_MAIN" "$LAB_PW_USER@127.0.0.1" 'id -un' </dev/null 2>&1)
if [ "$out" = "$LAB_PW_USER" ]; then
  status OK ssh-password "$LAB_PW_USER@127.0.0.1:$LAB_PORT_MAIN, password in $PWFILE"
else
  status FAIL ssh-password "password login failed: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
fi
# (target "localhost": OpenSSH's client refuses a jump host equal to the target, "jumphost loop")
out=$(ssh -F "$LAB_SSH/ssh_config" -J "$LAB_USER@127.0.0.1:$LAB_PORT_MAIN" -p "$LAB_PORT_MAIN" \
        "$LAB_USER@localhost" 'echo jumped' </dev/null 2>&1)
if [ "$out" = jumped ]; then
  status OK ssh-proxyjump "ssh -J $LAB_USER@127.0.0.1:$LAB_PORT_MAIN $LAB_USER@localhost:$LAB_PORT_MAIN"
else
  status FAIL ssh-proxyjump "$(echo "$out" | tail -n 2 | tr '\n' ' ')"
fi

if lab_wait 10 sh -c 'munge -n | unmunge'; then status OK munged "$(pid_detail munged)"
else status FAIL munged "munge -n | unmunge fails; $(pid_detail munged)"; fi
if mariadb-admin ping >/dev/null 2>&1; then status OK mariadb "$(pid_detail mariadbd)"
else status FAIL mariadb "mariadb-admin ping fails; $(pid_detail mariadbd) (log /var/log/mysql/error.log)"; fi
if [ "$DBD_OK" = 1 ] && lab_wait 30 timeout 20 sacct -n -X -S now-1minute; then status OK slurmdbd "127.0.0.1:6819 $(pid_detail slurmdbd), sacct answers"
else status FAIL slurmdbd "sacct fails: $(timeout 20 sacct -n -X 2>&1 | tail -n 1); $(pid_detail slurmdbd) (log /var/log/slurm/slurmdbd.log)"; fi
if [ "$MUNGE_OK" = 1 ] && lab_wait 30 sh -c 'timeout 10 scontrol ping | grep -q UP'; then status OK slurmctld "127.0.0.1:6817 $(pid_detail slurmctld)"
else status FAIL slurmctld "scontrol ping: $(scontrol ping 2>&1 | tr '\n' ' '); $(pid_detail slurmctld) (log /var/log/slurm/slurmctld.log)"; fi
node_ok() {  # the node is usable: idle, or running jobs; resume it if it is down/drained
  local st; st=$(timeout 10 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n 1)
  case $st in
    idle|mixed|allocated|completing) return 0 ;;
    down|drained|draining|down\*|drained\*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 ;;
  esac
  return 1
}
if [ "$MUNGE_OK" = 1 ] && lab_wait 60 node_ok; then status OK slurmd "node $HOST $(sinfo -h -N -n "$HOST" -o '%T cpus=%c'), $(pid_detail slurmd)"
else status FAIL slurmd "node $HOST: $(sinfo -h -N -n "$HOST" -o '%T %E' 2>&1); $(pid_detail slurmd) (log /var/log/slurm/slurmd.log)"; fi
if qconf -sh >/dev/null 2>&1; then status OK sge_qmaster "port 6444 $(pid_detail sge_qmaster)"
else status FAIL sge_qmaster "qconf -sh fails: $(qconf -sh 2>&1 | tail -n 1); $(pid_detail sge_qmaster) (log $SGE_SPOOL/qmaster/messages)"; fi
queue_ok() {  # all.q@HOST listed with a load value and no state flags
  qstat -f -q all.q 2>/dev/null | awk -v q="all.q@$HOST" '$1==q && NF==5 && $4!="-NA-" {f=1} END {exit !f}'
}
if lab_wait 60 queue_ok; then
  status OK sge_execd "all.q@$HOST slots(resv/used/tot)=$(qstat -f -q all.q | awk -v q="all.q@$HOST" '$1==q{print $3}'), $(pid_detail sge_execd)"
else
  status FAIL sge_execd "qstat -f: $(qstat -f -q all.q 2>&1 | grep -v -- --- | tail -n 1); $(pid_detail sge_execd)"
fi

# end-to-end jobs as the lab user over ssh
if [ "$SMOKE" = 1 ]; then
  out=$(lab_ssh "$LAB_PORT_MAIN" 'id=$(sbatch --parsable --wait -J lab-smoke -o /dev/null --wrap true) || exit 1
    for i in $(seq 50); do s=$(sacct -n -X -P -j "$id" -o State 2>/dev/null); [ "$s" = COMPLETED ] && break; sleep 0.2; done
    echo "$id $s"' 2>&1)
  case $out in
    *" COMPLETED") status OK slurm-job "sbatch --wait job ${out%% *}, sacct=COMPLETED" ;;
    *) status FAIL slurm-job "$(echo "$out" | tail -n 2 | tr '\n' ' ')" ;;
  esac
  out=$(lab_ssh "$LAB_PORT_MAIN" 'qsub -sync y -b y -N lab-smoke -o /dev/null -j y /bin/true' 2>&1)
  case $out in
    *"exited with exit code 0."*) status OK sge-job "qsub -sync y: $(echo "$out" | tail -n 1)" ;;
    *) status FAIL sge-job "$(echo "$out" | tail -n 2 | tr '\n' ' ')" ;;
  esac
  out=$(lab_ssh "$LAB_PORT_PBS" 'f=$(mktemp); printf "#!/bin/sh\ntrue\n" >"$f"
    qsub -W block=true -N lab-smoke -o /dev/null -e /dev/null "$f"; rc=$?; rm -f "$f"; exit $rc' 2>&1)
  case $out in
    [0-9]*) status OK pbs-job "wrapper qsub -W block=true job $(echo "$out" | tail -n 1)" ;;
    *) status FAIL pbs-job "$(echo "$out" | tail -n 2 | tr '\n' ' ')" ;;
  esac
fi

# ---------------------------------------------------------------------------------------
# 11. machine-readable description for the tests
LAB_HOST=$HOST LAB_FAILED="$FAILED" LAB_UIDN="$(id -u "$LAB_USER")" \
LAB_PWUIDN="$(id -u "$LAB_PW_USER")" LAB_HOME="$(getent passwd "$LAB_USER" | cut -d: -f6)" \
/usr/bin/python3 - "$LAB_JSON" <<EOF || die "writing $LAB_JSON failed"
import json, os, sys, time
failed = os.environ["LAB_FAILED"].split()
lab = {
    "host": "127.0.0.1",
    "hostname": os.environ["LAB_HOST"],
    "ports": {"ssh": $LAB_PORT_MAIN, "slurm": $LAB_PORT_MAIN, "sge": $LAB_PORT_MAIN, "pbs": $LAB_PORT_PBS},
    "user": "$LAB_USER",
    "uid": int(os.environ["LAB_UIDN"]),
    "home": os.environ["LAB_HOME"],
    "key_file": "$LAB_SSH/id_ed25519",
    "pub_key_file": "$LAB_SSH/id_ed25519.pub",
    "known_hosts": "$LAB_SSH/known_hosts",
    "ssh_config": "$LAB_SSH/ssh_config",
    "password_user": "$LAB_PW_USER",
    "password_uid": int(os.environ["LAB_PWUIDN"]),
    "password_file": "$PWFILE",
    "sshd_log": "$SSHD_LOG",
    "sshd_pid_file": "$SSHD_PID",
    "sshd_config": "$SSHD_CONF",
    # LogLevel VERBOSE also logs "Accepted key ... found at" (twice per key login): count these
    "sshd_login_regex": r"^Accepted (publickey|password|keyboard-interactive/pam) for ",
    "sshd_session_regex": r"^Starting session: ",
    "remote_python": "/usr/bin/python3",
    "slurm": {"cluster": "clustrixlab", "partition": "debug", "account": "lab", "cpus": 16,
              "node": os.environ["LAB_HOST"], "min_job_age_s": 300, "max_array_size": 10001},
    "sge": {"queue": "all.q", "pe": "smp", "slots": 16,
            "sge_root": "$SGE_ROOT", "sge_cell": "$SGE_CELL"},
    "pbs": {"flavor": "torque-on-slurm", "wrapper_dir": "$LAB_PBS_BIN", "queue": "debug"},
    "ok": not failed,
    "failed": failed,
    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
}
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    json.dump(lab, f, indent=2)
    f.write("\n")
os.chmod(tmp, 0o644)
os.replace(tmp, sys.argv[1])
EOF

n=$(echo "$FAILED" | wc -w)
log "done in $SECONDS s, $n failure(s)${FAILED:+:$FAILED}; lab described in $LAB_JSON"
[ "$n" = 0 ]
