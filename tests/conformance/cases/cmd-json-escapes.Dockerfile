FROM busybox
CMD ["echo", "\"quoted\"", "tab\there", "\u00e9", "back\\slash"]
ENTRYPOINT [ "sh" , "-c" ]
