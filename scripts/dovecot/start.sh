#!/usr/bin/env bash
# Starts Dovecot (Debian dovecot-imapd) on 127.0.0.1 for the IMAP intake tests: IMAP with
# STARTTLS on 10143, IMAPS on 10993, one passwd-file user `reports` (password `reports`),
# Maildir under the state directory, a self-signed certificate for 127.0.0.1 whose PEM the
# tests trust (BOTWATCH_IMAP_CA). Idempotent: an instance already answering is kept.
# Prints the environment the tests read.
set -euo pipefail
state="${1:-/tmp/botwatch-dovecot}"
port=10143
tls_port=10993
answers() { (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; }
if ! answers; then
  mkdir -p "$state/run" "$state/home"
  if [ ! -s "$state/ca.pem" ]; then
    # A private CA and a server certificate it signs (rustls/webpki refuse a self-signed
    # certificate that is its own CA as a server's).
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=botwatch test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$state/ca-key.pem" -out "$state/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$state/key.pem" -out "$state/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$state/ext.cnf"
    openssl x509 -req -in "$state/server.csr" -CA "$state/ca.pem" -CAkey "$state/ca-key.pem" \
      -CAcreateserial -days 3650 -extfile "$state/ext.cnf" -out "$state/cert.pem" 2>/dev/null
  fi
  # The user's mail is owned by `mail` (uid 8): Dovecot refuses to run mail as root.
  printf 'reports:{PLAIN}reports::::::\n' >"$state/passwd"
  chown -R mail:mail "$state/home"
  cat >"$state/dovecot.conf" <<CONF
base_dir = $state/run
state_dir = $state/run
log_path = $state/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <$state/cert.pem
ssl_key = <$state/key.pem
# Plain log-ins only over TLS, as in production; the tests use IMAPS or STARTTLS.
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 8
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
  mailbox Processed {
    auto = create
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $state/passwd
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$state/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $tls_port
    ssl = yes
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
CONF
  /usr/sbin/dovecot -c "$state/dovecot.conf"
  for _ in $(seq 50); do answers && break; sleep 0.1; done
fi
echo "BOTWATCH_IMAP_HOST=127.0.0.1"
echo "BOTWATCH_IMAP_PORT=$port"
echo "BOTWATCH_IMAPS_PORT=$tls_port"
echo "BOTWATCH_IMAP_USER=reports"
echo "BOTWATCH_IMAP_PASSWORD=reports"
echo "BOTWATCH_IMAP_CA=$state/ca.pem"
