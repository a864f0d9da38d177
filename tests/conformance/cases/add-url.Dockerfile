FROM busybox
ADD {http}/hello.txt /url/
ADD {http}/exec.sh /url-renamed
ADD {http}/archive.tar.gz /url-archive/
ADD --chown=1000:1000 {http}/dir/a.txt /url-owned/
