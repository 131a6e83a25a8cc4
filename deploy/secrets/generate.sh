#!/usr/bin/env sh
# Create the secret files docker-compose.yml mounts, with random values, unless they exist.
# Nothing here is committed (see .gitignore); back the files up like any other credential.
set -eu
cd "$(dirname "$0")"
umask 077
for name in notifier_webhook_token notifier_console_secret grafana_admin_password; do
  if [ -s "$name" ]; then
    echo "keep     deploy/secrets/$name"
  else
    python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$name"
    echo "created  deploy/secrets/$name"
  fi
done
# The exporter's environment (the ${VAR}s of its config, one VAR=value a line): docker-compose
# reads it on the host, so it stays private; created empty, fill it in.
[ -e exporter.env ] || { : > exporter.env; echo "created  deploy/secrets/exporter.env (empty)"; }
# The containers run as non-root users (einvoice 10001, grafana 472, nobody for Alertmanager) and
# compose mounts these files as they are: make them readable, the directory itself stays private.
chmod 0644 notifier_webhook_token notifier_console_secret grafana_admin_password
chmod 0700 .
