-- The default text pipeline: extract the text of plain text, Markdown and
-- HTML files, cut it into overlapping chunks at sentence or word
-- boundaries, and store one document per chunk with the file's metadata.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "text-chunks",
  description = "plain text, Markdown and HTML -> overlapping text chunks",
  match = { content_type = { "text/plain", "text/markdown", "text/x-markdown", "text/html" } },
  destination = { collection = "text_chunks", metadata = { type = "text_processing" } },
  handler = function(event)
    local text = mmpipe.tools.text.extract(event)
    local meta = mmpipe.tools.text.metadata(text.text, { format = "plain" })
    local docs = {}
    for _, chunk in ipairs(mmpipe.tools.text.chunk(text.text, { size = 1000, overlap = 100, format = "plain" })) do
      docs[#docs + 1] = {
        text = chunk.text,
        file_url = event.url,
        metadata = {
          chunk_index = chunk.index, char_start = chunk.start, char_stop = chunk.stop,
          format = text.format, invalid_bytes = text.invalid_bytes,
          file_characters = meta.characters, file_words = meta.words, file_lines = meta.lines,
        },
      }
    end
    return docs
  end,
}
