-- Model definitions: the three ways to say where texts and labels live.
CREATE EXTENSION humanloop;

SELECT extversion FROM pg_extension WHERE extname = 'humanloop';

-- A small ticket queue: twelve tickets of each of three categories, eight
-- of each labelled, four of each left for prediction and selection.
CREATE TABLE tickets (
	id integer PRIMARY KEY,
	body text,
	category text
);

INSERT INTO tickets (id, body, category) VALUES
	(1, 'my card has not arrived yet', 'card'),
	(2, 'when will my new card be delivered', 'card'),
	(3, 'the card I ordered still has not come in the post', 'card'),
	(4, 'card delivery is taking too long', 'card'),
	(5, 'how long does card delivery take', 'card'),
	(6, 'I am still waiting for my card to arrive', 'card'),
	(7, 'has my card been sent out', 'card'),
	(8, 'where is my card, it was ordered two weeks ago', 'card'),
	(9, 'the new card has not been delivered', NULL),
	(10, 'still no card in the mail', NULL),
	(11, 'my replacement card has not arrived', NULL),
	(12, 'card not delivered after ten days', NULL),
	(13, 'my transfer to another bank is pending', 'transfer'),
	(14, 'why has my bank transfer not gone through', 'transfer'),
	(15, 'the money I transferred has not reached the account', 'transfer'),
	(16, 'how long does an international transfer take', 'transfer'),
	(17, 'a transfer I made yesterday is still pending', 'transfer'),
	(18, 'the recipient did not receive my transfer', 'transfer'),
	(19, 'my transfer failed and the money is gone', 'transfer'),
	(20, 'can I cancel a transfer that is pending', 'transfer'),
	(21, 'transfer to my friend is still pending', NULL),
	(22, 'the bank transfer has not arrived at the recipient', NULL),
	(23, 'international transfer taking too long', NULL),
	(24, 'money transfer stuck as pending', NULL),
	(25, 'I forgot my password and cannot log in', 'password'),
	(26, 'how do I reset my password', 'password'),
	(27, 'the app says my password is wrong', 'password'),
	(28, 'I want to change my password', 'password'),
	(29, 'locked out after too many password attempts', 'password'),
	(30, 'password reset email never came', 'password'),
	(31, 'cannot sign in, password not accepted', 'password'),
	(32, 'need a new password for the app', 'password'),
	(33, 'reset password link does not work', NULL),
	(34, 'forgot password, please help me log in', NULL),
	(35, 'my password stopped working', NULL),
	(36, 'password change is not accepted', NULL);

-- Labels in the same table, id from the primary key.
SELECT hl_create_model('tickets', 'tickets', text_column => 'body', label_column => 'category') > 0 AS created;

-- Labels in a separate table of annotations, several per item allowed.
CREATE TABLE ticket_labels (
	ticket_id integer NOT NULL,
	annotator text NOT NULL,
	label text
);

INSERT INTO ticket_labels (ticket_id, annotator, label)
SELECT id, 'ana', category FROM tickets WHERE category IS NOT NULL;

SELECT hl_create_model('tickets_annotated', 'public.tickets', text_column => 'body',
					   labels_relation => 'public.ticket_labels',
					   labels_id_column => 'ticket_id', label_column => 'label') > 0 AS created;

-- A view has no primary key: name the id column.
CREATE VIEW open_tickets AS SELECT id AS ticket, body, category FROM tickets;

SELECT hl_create_model('tickets_view', 'open_tickets', id_column => 'ticket',
					   text_column => 'body', label_column => 'category',
					   options => '{"hash_bits": 12, "abstain_probability": 0.9}') > 0 AS created;

SELECT name, task, relation, labels_relation, labels, current_version, labelled_rows, classes
FROM hl_models ORDER BY name;

SELECT name, id_column, text_column, label_column, labels_id_column, options
FROM humanloop.models ORDER BY name;

-- Dropping and re-creating gives a clean model.
SELECT hl_drop_model('tickets_view');
SELECT hl_drop_model('tickets_view', if_exists => true);
SELECT hl_create_model('tickets_view', 'open_tickets', id_column => 'ticket',
					   text_column => 'body', label_column => 'category') > 0 AS created;
SELECT count(*) FROM hl_models;
