#!/bin/sh
# Checks secrets.env before `kubectl apply -k`: kustomize builds a Secret from empty values
# without a word, and the hub's pods then crash at start ("HUB_SECRET_ISENDPRO is set but
# empty"). Exits 1, naming each variable missing or empty, else 0.
#
#   deploy/kubernetes/check-secrets.sh [FILE]      FILE: secrets.env beside this script
set -eu

file=${1:-$(dirname "$0")/secrets.env}
if [ ! -f "$file" ]; then
    echo "$file: no such file: cp secrets.env.example secrets.env, then fill it in" >&2
    exit 1
fi

bad=0
# One callback secret per provider (core.models.Provider; tests/test_deploy.py keeps them equal).
for provider in ECAMPAIGN DMC ISENDPRO ECALL SMSMODE; do
    if ! grep -Eq "^[[:space:]]*HUB_SECRET_${provider}[[:space:]]*=" "$file"; then
        echo "$file: HUB_SECRET_${provider} is missing" >&2
        bad=1
    fi
done
# Any variable set to nothing (commas and blanks are nothing too): the hub refuses an empty
# secret, and an empty HUB_RABBITMQ_URL would mean no broker.
empty=$(sed -n -E 's/^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:],]*$/\1/p' "$file")
for name in $empty; do
    echo "$file: $name is empty: put its value after the '='" >&2
    bad=1
done
if [ "$bad" = 0 ]; then
    echo "$file: every variable has a value"
fi
exit "$bad"
