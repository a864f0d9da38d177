FROM busybox
RUN --mount=type=bind,source=dir/sub,target=/x cat /x/b.txt > /out1
RUN --mount=type=bind,source=hello.txt,target=/etc/h.txt cat /etc/h.txt > /out2
RUN --mount=type=bind,source=dir,target=/tmp/over cat /tmp/over/a.txt > /out3
