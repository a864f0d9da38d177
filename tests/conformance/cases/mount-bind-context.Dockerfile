FROM busybox
RUN --mount=type=bind,target=/ctx cat /ctx/hello.txt /ctx/dir/a.txt > /out
