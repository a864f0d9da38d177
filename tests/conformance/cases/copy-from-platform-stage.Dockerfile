FROM --platform=linux/arm64 busybox AS arm
COPY hello.txt /h
FROM busybox
COPY --from=arm /h /h
COPY --from=arm /bin/busybox /arm-busybox
