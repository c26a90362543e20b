#!/bin/sh
# The ruby badger's dependency step, run as root in /app holding only the Gemfile,
# Gemfile.lock and vendor/cache the source has. Installs the bundle into Ruby's system gem
# folder (/var/lib/gems/3.1.0), next to the gems Debian ships (rack, webrick, minitest,
# rake...), which Bundler uses as they are installed:
#   - with vendor/cache: `bundle install --local`, no network; a gem that is neither in
#     vendor/cache nor installed fails the build;
#   - without it: `bundle install` from the Gemfile's source (needs `--network host`).
# With a Gemfile.lock the install is frozen: a Gemfile that disagrees with its lock fails
# rather than resolving anew, so the same commit installs the same gems.
set -eu
cd /app
if [ ! -f Gemfile ]; then
    echo "ruby badger: no Gemfile, no gems to install"
    exit 0
fi
# Bundler's own home (its compact index cache) is scratch: not in the image.
BUNDLE_USER_HOME=$(mktemp -d "${TMPDIR:-/tmp}/bundle-home.XXXXXX")
trap 'rm -rf "$BUNDLE_USER_HOME"' EXIT
export BUNDLE_USER_HOME BUNDLE_SILENCE_ROOT_WARNING=true
if [ -f Gemfile.lock ]; then export BUNDLE_FROZEN=true; fi
set -- --jobs 1 --retry 0 --no-cache
if [ -d vendor/cache ]; then
    echo "ruby badger: installing the Gemfile offline from vendor/cache"
    bundle install --local "$@"
else
    echo "ruby badger: installing the Gemfile from its gem source"
    bundle install "$@"
fi
