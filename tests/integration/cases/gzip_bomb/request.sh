# 100 MiB of spaces; the gzip marker compresses it to about 100 KiB.
head -c $((100 << 20)) /dev/zero | tr '\0' ' '
