#!/bin/sh
# Install the report schedule (systemd timers) for the reports the contract asks for.
# Usage: deploy/reports/install.sh   (as root; the bundle installed under /opt/einvoice)
set -eu
here=$(dirname "$0")
install -m 0644 "$here"/systemd/einvoice-report-*.service "$here"/systemd/einvoice-report-*.timer \
    /etc/systemd/system/
install -d -o einvoice -g einvoice -m 0750 /var/lib/einvoice/reports
[ -e /etc/einvoice/report.env ] || install -o einvoice -g einvoice -m 0600 "$here"/report.env.example \
    /etc/einvoice/report.env
systemctl daemon-reload
# the timers to enable (tests/reports/test_schedule.py reads this list); the scorecard has its own
# timer, after the monthly report
for timer in day@daily day@health day@params month@monthly scorecard month@health month@params \
             quarter@handbook year@yearly week@weekly; do
    systemctl enable --now "einvoice-report-$timer.timer"
done
