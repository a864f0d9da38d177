FROM busybox
ADD --chmod=755 {http}/exec.sh /url-chmod
ADD --chmod=640 {http}/hello.txt /url-chmod-dir/
