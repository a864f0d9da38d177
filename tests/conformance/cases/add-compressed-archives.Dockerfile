FROM busybox
ADD archives/a.tar.bz2 /bz2/
ADD archives/a.tar.xz /xz/
ADD archives/tar-without-suffix /nosuffix/
ADD archives/plain.txt.gz /gz/
ADD archives /whole/
