FROM busybox
RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/new && cat /ctx/new > /out
