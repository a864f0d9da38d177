FROM busybox
WORKDIR /w
RUN --mount=type=bind,target=rel cat rel/hello.txt > /out
