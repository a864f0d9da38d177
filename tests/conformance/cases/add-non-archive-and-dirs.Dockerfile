FROM busybox
ADD dir/sub /ds/
ADD link-to-hello /lh
ADD glob/*.txt /gt/
ADD archive.tar archive.tar.gz /both/
