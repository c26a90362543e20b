#!/bin/sh
# The java badger's setup, run once when the badger image is made (no network).
#
# 1. Maven's global settings (/etc/maven/settings.xml, which Debian's mvn reads): the local
#    repository is /solum/cache/m2 (kept per app between builds, never in an image), and
#    every build first looks in Debian's repository /usr/share/maven-repo (the plugins a
#    `mvn package` runs, JUnit 4 and whatever lib*-java package the image holds), read as a
#    file: repository, so a build needs no network for what Debian ships; Maven Central
#    follows it, for builds with `--network host`.
# 2. The user DUs on this badger run as (badger.yaml `user: "1000:1000"`): `app`, uid and gid
#    1000, home /home/app. Builds still run as root; what they make stays readable by all.
set -eu
mkdir -p /etc/maven
cat >/etc/maven/settings.xml <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by the java badger's setup: Debian's repository before Maven Central. -->
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <localRepository>/solum/cache/m2</localRepository>
  <interactiveMode>false</interactiveMode>
  <profiles>
    <profile>
      <id>debian-repository</id>
      <repositories>
        <repository>
          <id>debian</id>
          <url>file:///usr/share/maven-repo</url>
          <!-- Debian's repository has no checksum files; it is part of the image. -->
          <releases><checksumPolicy>ignore</checksumPolicy></releases>
          <snapshots><enabled>false</enabled></snapshots>
        </repository>
      </repositories>
      <pluginRepositories>
        <pluginRepository>
          <id>debian</id>
          <url>file:///usr/share/maven-repo</url>
          <!-- Debian's repository has no checksum files; it is part of the image. -->
          <releases><checksumPolicy>ignore</checksumPolicy></releases>
          <snapshots><enabled>false</enabled></snapshots>
        </pluginRepository>
      </pluginRepositories>
    </profile>
  </profiles>
  <activeProfiles>
    <activeProfile>debian-repository</activeProfile>
  </activeProfiles>
</settings>
XML
chmod 0644 /etc/maven/settings.xml
grep -q '^app:' /etc/group 2>/dev/null || echo 'app:x:1000:' >> /etc/group
grep -q '^app:' /etc/passwd 2>/dev/null || echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd
mkdir -p /home/app
# Open to all and sticky, like /tmp, rather than owned by 1000: a rootless run sees the
# owners of a rootless unpack as root's, and a rootless build without subordinate ids
# cannot chown at all; this way every mode gives the same layer and a writable home.
chmod 1777 /home/app
java -version
mvn --version
