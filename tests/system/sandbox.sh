#!/bin/sh
# Runs ddum the way ddum.service does: the unit's sandboxing, emulated with bubblewrap, since no
# systemd runs here. ProtectSystem=strict + ReadWritePaths=/etc /home + StateDirectory (all of /
# read-only but those), PrivateTmp (a fresh /tmp; the test's work directory is bound back in for
# its configs), PrivateDevices (a minimal /dev), NoNewPrivileges (bwrap always sets it) and the
# unit's CapabilityBoundingSet. Used by run.sh for the second round of the system tests.
# run.sh fills in the work directory: sshd runs AuthorizedKeysCommand with an empty environment.
work=@WORK@
exec bwrap --die-with-parent \
  --ro-bind / / \
  --bind /etc /etc --bind /home /home \
  --tmpfs /tmp --bind "$work" "$work" \
  --dev /dev --proc /proc \
  --cap-drop ALL \
  --cap-add CAP_CHOWN --cap-add CAP_DAC_OVERRIDE --cap-add CAP_DAC_READ_SEARCH \
  --cap-add CAP_FOWNER --cap-add CAP_FSETID \
  /opt/ddum/ddum-real "$@"
