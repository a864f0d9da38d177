FROM busybox
COPY dir/ /dst/
COPY dir/sub /dst2/
