#!/usr/bin/env bash
# mbrola voices (and the RHVoice and SVOX Pico engines) live in Debian's contrib/non-free; fetch
# them through a private sources list so the system's apt configuration is left untouched.
# Optional: the corpus builder uses these voices only when they are installed.
set -euo pipefail
VOICES="us1 us2 us3 en1 de1 de2 de3 de4 de5 de6 fr1 fr4 nl2 af1 gr2 ro1 pl1 hu1 sw1 sw2"
# The mbrola-x engine's databases (asr/corpus/voices.py MBROLA_EXTRA): training supplement only.
VOICES="$VOICES cr1 de7 es1 es2 fr2 fr3 fr5 fr6 fr7"
need=""
for v in $VOICES; do [ -e "/usr/share/mbrola/$v" ] || need="$need mbrola-$v"; done
command -v mbrola >/dev/null || need="mbrola $need"
# Two more non-free engines for the rhvoice/pico training supplement (asr/corpus/voices.py):
# RHVoice's English voices and SVOX Pico (en-US trains; en-GB is a held-out evaluation voice).
[ -d /usr/share/RHVoice/voices/bdl ] || need="$need rhvoice rhvoice-english librhvoice-audio2 librhvoice-core7"
command -v pico2wave >/dev/null || need="$need libttspico-utils libttspico0 libttspico-data"
# festival's rab (British, needs the OALD lexicon) and don diphone voices: the festival-x supplement.
[ -d /usr/share/festival/voices/english/rab_diphone ] || need="$need festvox-rablpc16k festlex-oald"
[ -d /usr/share/festival/voices/english/don_diphone ] || need="$need festvox-don"
[ -z "$need" ] && exit 0
work=$(mktemp -d); mkdir -p "$work/parts" "$work/lists/partial" "$work/debs"
. /etc/os-release
cat > "$work/parts/nonfree.sources" <<EOT
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME}
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
opts=(-o Dir::Etc::SourceParts="$work/parts" -o Dir::Etc::SourceList=/dev/null -o Dir::State::Lists="$work/lists")
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get "${opts[@]}" update -qq
(cd "$work/debs" && apt-get "${opts[@]}" download $need)
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$work"/debs/*.deb
rm -rf "$work"
