FROM busybox AS build
RUN mkdir -p /out && echo built > /out/artifact && chmod 640 /out/artifact
FROM busybox
COPY --from=build /out/artifact /app/
