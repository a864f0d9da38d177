FROM busybox
COPY hello.txt /dst/renamed
