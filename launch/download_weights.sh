#!/usr/bin/env bash
# Downloads OpenCLIP's ViT-B-16-plus-240 LAION-400M weights, the backbone of the
# WinCLIP paper, on a machine with internet access. The files are OpenCLIP
# state dicts (torch.save zip archives) that `winclip` reads directly.
#
#   launch/download_weights.sh [DEST_DIR] [e31|e32]
#
# Then point an experiment's backbone (or `winclip score --checkpoint`) at the
# file, with --model-config configs/backbones/ViT-B-16-plus-240.json.
set -euo pipefail
dest=${1:-models/vit-b-16-plus-240}
epoch=${2:-e31}
case "$epoch" in
    e31) file=vit_b_16_plus_240-laion400m_e31-8fb26589.pt ;;
    e32) file=vit_b_16_plus_240-laion400m_e32-699c4b84.pt ;;
    *) echo "unknown epoch '$epoch' (expected e31 or e32)" >&2; exit 2 ;;
esac
url="https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/$file"
mkdir -p "$dest"
if [[ -s "$dest/$file" ]]; then
    echo "already present: $dest/$file"
else
    echo "downloading $url"
    curl -fL --retry 3 -o "$dest/$file.part" "$url"
    mv "$dest/$file.part" "$dest/$file"
fi
# OpenCLIP names its release files with the first 8 hex digits of their SHA-256.
expected=${file##*-}; expected=${expected%.pt}
actual=$(sha256sum "$dest/$file" | cut -c1-8)
if [[ "$actual" != "$expected" ]]; then
    echo "checksum mismatch for $dest/$file: sha256 starts with $actual, expected $expected" >&2
    exit 1
fi
echo "ok: $dest/$file (sha256 $actual...)"
