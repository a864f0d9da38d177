FROM busybox AS a
HEALTHCHECK --retries=2 CMD true
CMD ["a"]
FROM a
HEALTHCHECK CMD ["false"]
ENTRYPOINT ["e"]
