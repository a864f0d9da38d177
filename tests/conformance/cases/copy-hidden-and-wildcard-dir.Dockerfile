FROM busybox
RUN mkdir -p /s/.hidden /s/v && echo h > /s/.hidden/f && echo v > /s/v/f && echo dot > /s/.dotfile
FROM busybox
COPY --from=0 /s/* /star/
COPY --from=0 /s/.* /dotstar/
COPY --from=0 /s/ /slash/
