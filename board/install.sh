#!/bin/sh
# Installs cxr-edge as a service on a Raspberry Pi (or any Debian-style aarch64 board):
# the manual route, where the Debian package (board/README.md, "5. Install") cannot be used.
# Idempotent: run it again after an update.
#
#   sudo board/install.sh BINARY CONFIG [MODEL_BUNDLE_DIR]
#
#   BINARY            the aarch64 board binary ($CARGO_TARGET_DIR_AARCH64/aarch64-unknown-linux-gnu/board/cxr-edge)
#   CONFIG            one of board/*.toml (or your own); an existing /etc/cxr-edge/config.toml
#                     is kept unless FORCE_CONFIG=1
#   MODEL_BUNDLE_DIR  optional: the model bundle folder, copied to /var/lib/cxr-edge/model
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ "$#" -lt 2 ]; then
  sed -n '2,13p' "$0"
  exit 2
fi
bin=$1 config=$2 model=${3:-}
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
[ -f "$bin" ] || { echo "$bin: no such binary" >&2; exit 1; }
[ -f "$config" ] || { echo "$config: no such config" >&2; exit 1; }
case "$(dpkg-query -W -f='${db:Status-Status}' cxr-edge 2>/dev/null || true)" in
  "" | not-installed | config-files) ;;
  *) echo "the cxr-edge package is installed: update it with apt (board/README.md), or purge it first" >&2
     exit 1 ;;
esac
case "$(uname -m)" in
  aarch64|arm64) ;;
  *) echo "warning: this machine is $(uname -m); the board binary is built for aarch64" >&2 ;;
esac

# 1. Groups for device access, and the service user (no shell, no password).
for g in spi gpio i2c video; do
  getent group "$g" >/dev/null || groupadd --system "$g"
done
if ! id cxr >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/cxr-edge --no-create-home --shell /usr/sbin/nologin \
    --user-group cxr
fi
usermod -a -G spi,gpio,i2c,video cxr

# 2. Binary, documentation, state and drop folders.
install -m 0755 "$bin" /usr/local/bin/cxr-edge
install -d -m 0755 /usr/local/share/doc/cxr-edge
install -m 0644 "$here/README.md" "$here/WIRING.md" /usr/local/share/doc/cxr-edge/
install -d -o cxr -g cxr -m 0750 /var/lib/cxr-edge
install -d -o cxr -g cxr -m 0770 /srv/cxr-drop
if [ -n "$model" ]; then
  rm -rf /var/lib/cxr-edge/model.new
  cp -r "$model" /var/lib/cxr-edge/model.new
  chown -R cxr:cxr /var/lib/cxr-edge/model.new
  rm -rf /var/lib/cxr-edge/model
  mv /var/lib/cxr-edge/model.new /var/lib/cxr-edge/model
fi

# 3. Configuration, with the header's GPIO chip filled in (Pi 5: gpiochip4 or gpiochip0).
install -d -m 0755 /etc/cxr-edge
if [ ! -f /etc/cxr-edge/config.toml ] || [ "${FORCE_CONFIG:-0}" = 1 ]; then
  chip=""
  if command -v gpiodetect >/dev/null 2>&1; then
    chip=$(gpiodetect | awk '/pinctrl-(rp1|bcm2711|bcm2835)/ { print "/dev/" $1; exit }')
  fi
  if [ -n "$chip" ]; then
    sed "s|^gpiochip = \".*\"|gpiochip = \"$chip\"|" "$config" > /etc/cxr-edge/config.toml
    echo "header GPIO chip: $chip"
  else
    cp "$config" /etc/cxr-edge/config.toml
    grep -q '^gpiochip' "$config" && echo "warning: gpiodetect not found (apt install gpiod); check gpiochip in /etc/cxr-edge/config.toml" >&2
  fi
  chmod 0644 /etc/cxr-edge/config.toml
else
  echo "keeping existing /etc/cxr-edge/config.toml (FORCE_CONFIG=1 replaces it)"
fi

# 4. SPI and I2C on (Raspberry Pi firmware config); a reboot is needed the first time.
bootcfg=""
for f in /boot/firmware/config.txt /boot/config.txt; do
  [ -f "$f" ] && { bootcfg=$f; break; }
done
reboot_needed=0
if [ -n "$bootcfg" ]; then
  for p in dtparam=spi=on dtparam=i2c_arm=on; do
    if ! grep -q "^$p" "$bootcfg"; then
      echo "$p" >> "$bootcfg"
      reboot_needed=1
    fi
  done
  grep -q '^i2c-dev' /etc/modules 2>/dev/null || echo i2c-dev >> /etc/modules
fi

# 5. Device permissions and the service.
install -m 0644 "$here/99-cxr-edge.rules" /etc/udev/rules.d/99-cxr-edge.rules
udevadm control --reload-rules && udevadm trigger || true
# The unit names the package's paths (/usr/bin, /usr/share/doc); this route installs under /usr/local.
sed -e 's|/usr/bin/cxr-edge|/usr/local/bin/cxr-edge|' -e 's|/usr/share/doc/cxr-edge|/usr/local/share/doc/cxr-edge|' \
  "$here/cxr-edge.service" > /etc/systemd/system/cxr-edge.service
chmod 0644 /etc/systemd/system/cxr-edge.service
systemctl daemon-reload
systemctl enable cxr-edge.service

if [ "$reboot_needed" = 1 ]; then
  echo "SPI/I2C were just enabled in $bootcfg: reboot now; the service starts after the reboot."
else
  systemctl restart cxr-edge.service
  echo "started; follow it with: journalctl -u cxr-edge -f"
fi
