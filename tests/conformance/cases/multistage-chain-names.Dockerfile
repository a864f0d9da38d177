FROM busybox AS A
RUN echo a > /a
FROM a AS B
RUN echo b > /b
FROM busybox
COPY --from=A /a /fromA
COPY --from=b /b /a /both/
COPY --from=1 /b /idx
