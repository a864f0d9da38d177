FROM scratch AS files
COPY dir /d
COPY hello.txt /
FROM busybox
COPY --from=files / /from-scratch/
