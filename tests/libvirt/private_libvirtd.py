"""A libvirt daemon of the test's own, apart from any system libvirt.

libvirtd running as root is the privileged daemon: it reads
/etc/libvirt and keeps its state under /var and /run, whatever its
arguments say.  So it is started in a private mount namespace (unshare)
where those paths are directories of the test:

    ROOT/etc-libvirt   over /etc/libvirt   libvirtd.conf, qemu.conf, domains
    ROOT/var           over /var           lib/libvirt, cache/libvirt,
                                           log/libvirt (daemon and QEMU logs)
    ROOT/run           over /run           libvirt/libvirt-sock, QEMU's pid
    ROOT/passwd, ROOT/group over /etc/passwd, /etc/group

The host's /etc, /var and /run stay as they are, and nothing is installed
as a service.  The QEMU driver looks up its default user and group
(libvirt-qemu, which Debian's libvirt-daemon-system creates with the
group kvm) before it reads qemu.conf, so the private passwd and group
files add them when the host lacks them; qemu.conf then runs QEMU as
root.  virsh talks
to the daemon through ROOT/run/libvirt/libvirt-sock, which the namespace
shares with the host.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import signal
import subprocess
import time

LIBVIRTD = '/usr/sbin/libvirtd'

LIBVIRTD_CONF = '''\
# The test's private libvirtd (see tests/libvirt/private_libvirtd.py).
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
'''

# What the QEMU driver needs as root with neither cgroups nor a security
# driver set up for it, and without virtlogd.
QEMU_CONF = '''\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
'''

# Bind mounts: (path under ROOT, host path).  ROOT/var/run points to /run
# as the host's /var/run does.
MOUNTS = [('etc-libvirt', '/etc/libvirt'), ('var', '/var'), ('run', '/run'),
          ('passwd', '/etc/passwd'), ('group', '/etc/group')]

QEMU_USER = 'libvirt-qemu'
QEMU_GROUPS = ('libvirt-qemu', 'kvm')


def _with_entry(path, name, line):
    """The text of @path with @line added unless it names @name already."""
    with open(path) as f:
        text = f.read()
    if any(ln.split(':', 1)[0] == name for ln in text.splitlines()):
        return text
    return text + ('' if text.endswith('\n') else '\n') + line + '\n'


def _free_id(path, start):
    with open(path) as f:
        used = {int(ln.split(':')[2]) for ln in f if ln.count(':') >= 3}
    while start in used:
        start += 1
    return start


class PrivateLibvirtd:
    """libvirtd with its configuration, state, logs and socket in @root."""

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.stderr = os.path.join(root, 'libvirtd.stderr')
        self.socket = os.path.join(root, 'run', 'libvirt', 'libvirt-sock')
        self.uri = f'qemu:///system?socket={self.socket}'
        self.log_dir = os.path.join(root, 'var', 'log', 'libvirt')

    def path(self, host_path):
        """Where @host_path, as the daemon sees it, is seen from outside
        the namespace."""
        for inside, outside in MOUNTS:
            if host_path == outside or host_path.startswith(outside + '/'):
                return os.path.join(self.root, inside) + \
                    host_path[len(outside):]
        return host_path

    def _lay_out(self):
        r = self.root
        for d in ('etc-libvirt', 'var/lib/libvirt', 'var/cache/libvirt',
                  'var/log/libvirt', 'run/libvirt'):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        os.symlink('/run', os.path.join(r, 'var', 'run'))
        with open(os.path.join(r, 'etc-libvirt', 'libvirtd.conf'), 'w') as f:
            f.write(LIBVIRTD_CONF)
        with open(os.path.join(r, 'etc-libvirt', 'qemu.conf'), 'w') as f:
            f.write(QEMU_CONF)
        group_path = os.path.join(r, 'group')
        with open('/etc/group') as src, open(group_path, 'w') as dst:
            dst.write(src.read())
        for name in QEMU_GROUPS:
            gid = _free_id(group_path, 64055)
            text = _with_entry(group_path, name, f'{name}:x:{gid}:')
            with open(group_path, 'w') as f:
                f.write(text)
        gid = next(ln.split(':')[2] for ln in text.splitlines()
                   if ln.startswith(QEMU_GROUPS[0] + ':'))
        uid = _free_id('/etc/passwd', 64055)
        passwd = _with_entry('/etc/passwd', QEMU_USER,
                             f'{QEMU_USER}:x:{uid}:{gid}:libvirt QEMU '
                             f'(private):/var/lib/libvirt:/usr/sbin/nologin')
        with open(os.path.join(r, 'passwd'), 'w') as f:
            f.write(passwd)

    def start(self, timeout=60):
        """Starts the daemon and waits until virsh gets an answer from it;
        raises RuntimeError if it does not come up."""
        self._lay_out()
        mounts = '; '.join(f'mount --bind {os.path.join(self.root, inside)} '
                           f'{outside}' for inside, outside in MOUNTS)
        conf = '/etc/libvirt/libvirtd.conf'
        pid_file = os.path.join(self.root, 'libvirtd.pid')
        # unshare execs the shell, which execs libvirtd: the PID we hold
        # is the daemon's.
        script = f'set -e; {mounts}; exec {LIBVIRTD} -f {conf} -p {pid_file}'
        with open(self.stderr, 'w') as err:
            self.proc = subprocess.Popen(
                ['unshare', '--mount', '--propagation', 'private', '--',
                 'sh', '-c', script],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'libvirtd exited with status '
                                   f'{self.proc.returncode}')
            if os.path.exists(self.socket) and \
                    self.virsh('list', '--all', check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f'libvirtd did not answer in {timeout} s')
            time.sleep(0.2)

    def virsh(self, *args, check=True, timeout=120):
        """Runs virsh against this daemon; returns the CompletedProcess
        (text); with @check, raises RuntimeError when virsh fails."""
        p = subprocess.run(['virsh', '-q', '-c', self.uri, *args],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)} failed "
                               f'({p.returncode}): {p.stderr.strip()}')
        return p

    def stop(self, timeout=30):
        """Stops the daemon by its PID (SIGTERM, then SIGKILL after
        @timeout s); returns its exit status, None if it never started.
        Safe to call twice."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def logs(self):
        """The daemon's output and every log under its log directory."""
        parts = []
        files = [self.stderr] + sorted(
            os.path.join(d, f) for d, _, fs in os.walk(self.log_dir)
            for f in fs)
        for path in files:
            try:
                with open(path, errors='replace') as f:
                    parts.append(f'==== {path}\n{f.read()}')
            except OSError as e:
                parts.append(f'==== {path}: {e}')
        return '\n'.join(parts)
