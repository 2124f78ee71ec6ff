#!/usr/bin/with-contenv bashio
# Starts the gateway with the add-on's options: the site file (in the add-on's config
# folder, /config inside the add-on) and the log level.  The store belongs in /data
# (store.url: /data/plantguard.db), the OPC UA PKI too (services.opcua.pki_dir: /data/pki),
# and services.opcua.host must be 0.0.0.0 for port 4840 to reach it.
set -e

site_file="$(bashio::config 'site_file')"
log_level="$(bashio::config 'log_level')"

if ! bashio::fs.file_exists "${site_file}"; then
    bashio::exit.nok "site file ${site_file} not found: put site.yaml in the add-on's config folder"
fi

bashio::log.info "PlantGuard: running ${site_file}"
exec /opt/plantguard/bin/plantguard --log-level "${log_level}" run "${site_file}"
