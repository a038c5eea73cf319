#!/usr/bin/env bash
# Make sure the machine services the tests use are there: PostgreSQL on 127.0.0.1:5432 and
# Debian's Chromium for the dashboard tests. Safe to run again; it changes nothing when both
# are already in place.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "ensure-services: starting PostgreSQL"
    for version in $(ls /etc/postgresql 2>/dev/null); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "ensure-services: PostgreSQL is not answering on 127.0.0.1:5432; the PostgreSQL tests will fail" >&2
fi

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ]; then
        echo "ensure-services: installing Debian's chromium for the dashboard tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "ensure-services: /usr/bin/chromium is missing; run 'sudo apt-get install chromium' for the dashboard tests" >&2
    fi
fi
