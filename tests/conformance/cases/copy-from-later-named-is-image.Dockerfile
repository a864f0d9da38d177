FROM busybox
COPY --from=later /x /x
FROM busybox AS later
RUN touch /x
