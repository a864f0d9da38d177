FROM busybox AS a
ENTRYPOINT ["a"]
CMD ["b"]
FROM a
ENTRYPOINT []
FROM a AS c
CMD []
FROM c
