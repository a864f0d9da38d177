FROM busybox AS seed
RUN mkdir /seed && echo seeded > /seed/s
FROM busybox
RUN --mount=type=cache,target=/c,from=seed,source=/seed,id=seeded cat /c/s > /out
RUN --mount=type=cache,target=/var/lib/deep/c,sharing=locked,id=l echo ok > /out2
